"""The book as a whole: library in sync with the notebooks, every chapter's contract and record, and proof that the
output checks can fail."""
import configparser, json, os, shutil, subprocess, sys
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import pytest
import yaml

from conftest import BIN, ROOT, cli
from minirepro.core.repro import chapter_slugs, claims_at, load_paper, scale_settings
from minirepro.core.results import verify_run

CHAPTERS = chapter_slugs(ROOT)


def _files(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*.py")) if "__pycache__" not in p.parts}


def test_library_is_in_sync_with_the_notebooks(tmp_path):
    """nbdev-export, run on a copy of the book, must reproduce lib/ exactly (lib/ is generated, never edited)."""
    for f in ("pyproject.toml", "README.md", "settings.ini"): shutil.copy(ROOT/f, tmp_path/f)
    shutil.copytree(ROOT/"nbs", tmp_path/"nbs")
    (tmp_path/"lib"/"minirepro").mkdir(parents=True)
    shutil.copy(ROOT/"lib"/"minirepro"/"__init__.py", tmp_path/"lib"/"minirepro"/"__init__.py")
    r = subprocess.run([str(BIN/"nbdev-export")], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    new, old = _files(tmp_path/"lib"/"minirepro"), _files(ROOT/"lib"/"minirepro")
    assert sorted(new) == sorted(old), "run `make export`: modules differ"
    stale = [f for f in new if new[f] != old[f]]
    assert not stale, f"lib/ is out of sync with nbs/ in {stale}: run `make export` and commit lib/"


@pytest.mark.parametrize("slug", CHAPTERS)
def test_chapter_contract(slug):
    nb = nbformat.read(str(ROOT/"nbs"/"papers"/f"{slug}.ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for name in ("scale", "seed", "device", "overrides"): assert f"{name} = " in params[0].source
    assert f'setup("{slug}", scale, seed, device, overrides=overrides' in "".join(c.source for c in code), \
        "setup gets the chapter's identity and the preset overrides (minirepro run -p)"
    assert "#| default_exp papers." in "".join(c.source for c in code)
    checked = [c for c in code if "NBVAL_CHECK_OUTPUT" in c.source]
    assert len(checked) >= 2, "a results table and a claims table, both checked by nbval"
    assert all(c.execution_count and c.outputs for c in checked), "the chapter is committed executed"
    assert all(c.execution_count for c in code if c.outputs), "cells with outputs need execution counts (nbval)"
    assert "claims hold" in "".join(o.get("text", "") for c in checked for o in c.outputs)


@pytest.mark.parametrize("slug", CHAPTERS)
def test_chapter_record_matches_its_paper_yaml_and_notebook(slug):
    paper = load_paper(slug, ROOT)
    rec = json.loads((ROOT/"papers"/slug/"results"/"ci.json").read_text())
    assert rec["slug"] == slug and rec["scale"] == "ci" and rec["seed"] == 0 and rec["device"] == "cpu"
    assert [(c["id"], c["op"], c["threshold"]) for c in rec["claims"]] == [(c["id"], c["op"], c["threshold"]) for c in claims_at(paper, "ci")]
    assert all(isinstance(c["holds"], bool) for c in rec["claims"])
    assert rec["preset"] == paper["scales"]["ci"]
    assert rec["wall_s"] <= scale_settings("ci").getfloat("budget_s"), "over the ci budget"
    for name in rec["figures"]: assert (ROOT/"papers"/slug/"figures"/f"{name}.png").exists()
    # the committed notebook shows the recorded outcome
    nb = nbformat.read(str(ROOT/"nbs"/"papers"/f"{slug}.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    n = sum(c["holds"] for c in rec["claims"])
    assert f"{n}/{len(rec['claims'])} claims hold" in text


def _copy_book(dst: Path):
    for f in ("settings.ini", "pyproject.toml"): shutil.copy(ROOT/f, dst/f)
    shutil.copytree(ROOT/"papers", dst/"papers")
    shutil.copytree(ROOT/"nbs", dst/"nbs")


def test_verify_fails_when_a_recorded_metric_or_figure_changes(tmp_path, monkeypatch):
    """A run identical to the record verifies; moving one recorded metric beyond tolerance, or one figure, does not."""
    book = tmp_path/"book"; book.mkdir(); _copy_book(book)
    monkeypatch.setenv("MINIREPRO_ROOT", str(book))
    run = tmp_path/"run"; shutil.copytree(book/"papers"/"aaren"/"figures", run/"figures")
    shutil.copy(book/"papers"/"aaren"/"results"/"ci.json", run/"results.json")
    assert verify_run("aaren", run, root=book) == []
    rec = book/"papers"/"aaren"/"results"/"ci.json"
    data = json.loads(rec.read_text()); data["metrics"]["forecast_mse_aaren"] *= 1.01; rec.write_text(json.dumps(data))
    probs = verify_run("aaren", run, root=book)
    assert len(probs) == 1 and probs[0].startswith("metric forecast_mse_aaren")
    shutil.copy(run/"results.json", rec)
    fig, ax = plt.subplots(figsize=(5, 3.4)); ax.plot([0, 1]); fig.savefig(run/"figures"/"memory.png"); plt.close(fig)
    assert [p.split(":")[0] for p in verify_run("aaren", run, root=book)] == ["figure memory.png"]


def test_nbval_fails_when_a_recorded_output_changes(tmp_path):
    """Change one number in a checked output of a copy of a chapter: nbval must fail on exactly that cell."""
    book = tmp_path/"book"; book.mkdir(); _copy_book(book)
    path = book/"nbs"/"papers"/"aaren.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    target = next(c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source and "print_table" in c.source)
    out = target.outputs[0]
    assert "aaren" in out.text
    lines = out.text.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("aaren "))
    lines[i] = lines[i].replace(lines[i].split()[1], "9.99", 1)  # Aaren's forecast MSE
    out.text = "\n".join(lines) + "\n"
    nbformat.write(nb, str(path))
    env = {**os.environ, "MINIREPRO_ROOT": str(book), "MINIREPRO_OUT": str(tmp_path/"runs")}
    env.pop("MINIREPRO_RUN_DIR", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "--nbval-lax",
                        "--nbval-current-env", "--nbval-sanitize-with", str(ROOT/"tests"/"sanitize.cfg"), str(path)],
                       cwd=book, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 1, r.stdout[-3000:]
    assert "1 failed" in r.stdout and "9.99" in r.stdout, r.stdout[-3000:]
    assert "Traceback" not in r.stdout.split("9.99")[0][-2000:] or "mismatch" in r.stdout.lower()


def test_a_chapter_runs_at_another_seed(tmp_path):
    """`minirepro run aaren --seed 5` writes the executed notebook, results.json with every claim decided, and figures."""
    r = cli("run", "aaren", "--seed", "5", "--out", tmp_path, env={"MINIREPRO_ROOT": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path/"aaren"/"ci-seed5"/"results.json").read_text())
    assert res["seed"] == 5 and len(res["claims"]) == len(load_paper("aaren", ROOT)["claims"])
    assert all(isinstance(c["holds"], bool) for c in res["claims"])
    assert (tmp_path/"aaren"/"ci-seed5.ipynb").exists()
    assert {p.name for p in (tmp_path/"aaren"/"ci-seed5"/"figures").glob("*.png")} == {"tasks.png", "memory.png"}
    assert res["metrics"] != json.loads((ROOT/"papers"/"aaren"/"results"/"ci.json").read_text())["metrics"]  # a new seed, new numbers
