"""Shared fixtures: offline mode, portable numerics for the notebooks' kernels, the repository root, and a small throw-away book for command-line tests."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"): os.environ[k] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# the notebooks' kernels (nbval) start with the ci scale's portable numerics, as `minirepro run` starts them: their
# recorded outputs are ci numbers, the same on every processor only under these settings
from minirepro.core.repro import numerics_env  # noqa: E402
os.environ.update(numerics_env("ci"))


@pytest.fixture
def root():
    return ROOT


TINY_CHAPTER = [
    ("md", "# Tiny\n\nA chapter-shaped notebook for command-line tests."),
    ("params", 'scale = "ci"\nseed = 0\ndevice = "auto"\noverrides = {}\nsleep_s = 0.0\nfail = False'),
    ("code", "import time\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
             "from minirepro.core.repro import setup\nfrom minirepro.core.results import check_claims, claims_table, finish, save_figure\n"
             "run = setup(SLUG, scale, seed, device, overrides=overrides, sleep_s=sleep_s, fail=fail)\nP = run.P"),
    ("code", "time.sleep(sleep_s)\nif fail: raise RuntimeError('asked to fail')\n"
             "metrics = {'value': P.n * 2 + seed, 'latency_ms': time.perf_counter() % 1}\n"
             "fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], [0, P.n]); save_figure(run, fig, 'line', {'y': [0, P.n]}); plt.close(fig)"),
    ("code", "# NBVAL_CHECK_OUTPUT\nclaims = check_claims(run.paper, metrics)\nprint(claims_table(claims))"),
    ("code", "finish(run, metrics, claims)"),
]

TINY_PAPER = """slug: {slug}
title: A tiny chapter
fidelity: C
scales:
  ci: {{n: 3}}
  full: {{n: 30}}
claims:
  - id: big-enough
    statement: value is at least 6
    paper_value: "6"
    metric: value
    op: ">="
    threshold: 6
tolerances:
  "latency_*": ignore
"""


def make_chapter(nbs_papers: Path, slug: str):
    cells = []
    for kind, src in TINY_CHAPTER:
        src = src.replace("SLUG", repr(slug))
        if kind == "md": cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            c = nbformat.v4.new_code_cell(src)
            if kind == "params": c.metadata["tags"] = ["parameters"]
            cells.append(c)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(nbs_papers/f"{slug}.ipynb"))


@pytest.fixture
def tiny_book(tmp_path, monkeypatch):
    """A book with two small chapters ('tiny', 'tiny2') and one planned paper without a chapter ('later')."""
    book = tmp_path/"book"
    (book/"nbs"/"papers").mkdir(parents=True)
    shutil.copy(ROOT/"settings.ini", book/"settings.ini")
    (book/"papers").mkdir()
    (book/"papers"/"book.yaml").write_text(
        "parts:\n  - id: I\n    title: Tests\n    papers:\n"
        "      - {slug: tiny, fidelity: C, title: A tiny chapter}\n"
        "      - {slug: tiny2, fidelity: C, title: Another tiny chapter}\n"
        "      - {slug: later, fidelity: B, title: Not written yet}\n")
    for slug in ("tiny", "tiny2"):
        (book/"papers"/slug).mkdir()
        (book/"papers"/slug/"paper.yaml").write_text(TINY_PAPER.format(slug=slug))
        make_chapter(book/"nbs"/"papers", slug)
    (book/"README.md").write_text("# Tiny book\n\n<!-- status:begin -->\nSTALE\n<!-- status:end -->\n\nEnd.\n")
    monkeypatch.setenv("MINIREPRO_ROOT", str(book))
    monkeypatch.delenv("MINIREPRO_OUT", raising=False)
    monkeypatch.delenv("MINIREPRO_RUN_DIR", raising=False)
    return book


def cli(*args, env=None, cwd=None, timeout=600):
    """Run the installed `minirepro` command; returns the CompletedProcess."""
    return subprocess.run([str(BIN/"minirepro"), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)
