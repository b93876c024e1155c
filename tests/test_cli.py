"""The `minirepro` command on a small throw-away book (see conftest.tiny_book)."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import nbformat
import pytest

from conftest import BIN, cli
from minirepro.core.results import cpu_info


def test_list(tiny_book):
    r = cli("list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["slug", "part", "fidelity", "chapter", "ci", "ci-seeds", "full", "full-seeds"]
    assert any(l.split()[:4] == ["later", "I", "B", "-"] for l in lines)
    rows = json.loads(cli("list", "--json").stdout)
    assert [r["slug"] for r in rows] == ["tiny", "tiny2", "later"] and rows[0]["chapter"] and not rows[2]["chapter"]


@pytest.mark.parametrize("args,message", [
    (["run", "no-such-paper"], "unknown paper 'no-such-paper'; valid papers: tiny, tiny2"),
    (["run", "later"], "in the book, but its chapter is not written yet"),
    (["run", "tiny", "--scale", "huge"], "unknown scale 'huge'; valid scales: ci, full"),
    (["run", "tiny", "--device", "gpu"], "valid devices: auto, cpu, cuda"),
    (["run", "tiny", "-p", "sleep=1"], "unknown parameter 'sleep' for tiny (did you mean sleep_s, seed, scale?); valid parameters: device, fail, n, overrides, scale, seed, sleep_s"),
    (["run", "tiny", "-p", "nn=4"], "unknown parameter 'nn' for tiny (did you mean n"),
    (["run", "tiny", "-p", "n=many"], "preset key 'n' in the ci preset of tiny holds int 3; got str 'many'"),
    (["run", "tiny", "-p", "n=4", "--record"], "--record makes the reference run"),
    (["run", "tiny", "-p", "overrides=4"], "overrides takes a mapping of preset keys to values"),
    (["run", "tiny", "-p", "overrides={m: 4}"], "unknown preset key 'm' in the ci preset of tiny; valid preset keys: n"),
    (["estimate", "tiny", "-p", "m=4"], "unknown parameter 'm' for tiny"),
    (["run", "tiny", "-p", "noequals"], "not of the form key=value"),
    (["run", "tiny", "-p", "seed=3"], "set seed with --seed"),
    (["run"], "name at least one chapter, or --all"),
    (["run", "tiny", "--all"], "not both"),
    (["run", "tiny", "--seed", "1", "--record"], "--record makes the reference run"),
    (["run", "tiny", "--seeds", "0-x"], "write them as 0-4"),
    (["run", "tiny", "--seeds", "0-2", "--seed", "3"], "not both"),
    (["verify", "nope"], "unknown paper 'nope'"),
    (["estimate", "nope"], "unknown paper 'nope'"),
    (["estimate", "tiny", "--scale", "huge"], "unknown scale 'huge'; valid scales: ci, full"),
    (["estimate", "tiny", "--steps", "0"], "--steps must be at least 1"),
    (["wheelhouse", "--glibc", "1.0"], "give a version 2.17 or newer"),
    (["wheelhouse", "--list", "--python", "3"], "give it as major.minor"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tiny_book, args, message):
    r = cli(*args)
    assert r.returncode == 2 and message in r.stderr, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_run_writes_notebook_results_and_figures(tiny_book, tmp_path):
    out = tmp_path/"out"
    r = cli("run", "tiny", "--seed", "5", "-p", "sleep_s=0.1", "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[1/1] tiny ci seed 5: 1/1 claims hold" in r.stdout and "1/1 chapter runs executed, 1/1 claims hold" in r.stdout
    res = json.loads((out/"tiny"/"ci-seed5"/"results.json").read_text())
    assert res["seed"] == 5 and res["params"] == {"sleep_s": 0.1, "fail": False} and res["metrics"]["value"] == 11
    assert res["claims"][0]["holds"] is True and res["provenance"]["packages"]["torch"]
    assert res["provenance"]["numerics"] == "portable"   # the kernel started with the ci scale's pinned numerics
    assert (out/"tiny"/"ci-seed5"/"figures"/"line.png").exists()
    nb = nbformat.read(str(out/"tiny"/"ci-seed5.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_a_preset_value_set_with_p_changes_that_run_alone(tiny_book, tmp_path):
    """`-p n=5` reaches the chapter's preset through its `overrides` parameter; paper.yaml and the record stay as
    they were, results.json says what was changed, and verify names the changed setting before the numbers."""
    paper = (tiny_book/"papers"/"tiny"/"paper.yaml").read_text()
    assert cli("run", "tiny", "--record").returncode == 0
    r = cli("run", "tiny", "-p", "n=5", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("preset values from -p: n=5 (the ci preset changed for these runs")
    res = json.loads((tmp_path/"tiny"/"ci-seed0"/"results.json").read_text())
    assert res["metrics"]["value"] == 10 and res["preset"] == {"n": 5} and res["overrides"] == {"n": 5}
    nb = nbformat.read(str(tmp_path/"tiny"/"ci-seed0.ipynb"), as_version=4)
    assert "overrides n=5 (preset: 3): not the recorded ci configuration" in "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert (tiny_book/"papers"/"tiny"/"paper.yaml").read_text() == paper
    assert json.loads((tiny_book/"papers"/"tiny"/"results"/"ci.json").read_text())["preset"] == {"n": 3}
    v = cli("verify", "tiny", "--from", tmp_path)
    lines = v.stdout.splitlines()
    assert v.returncode == 1 and lines[1].strip() == "setting preset n: the run used 5, the record 3", v.stdout
    assert "metric value: 10 differs from recorded 6" in v.stdout


def test_p_refuses_a_preset_value_where_the_chapter_takes_no_overrides(tiny_book):
    path = tiny_book/"nbs"/"papers"/"tiny2.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    for c in nb.cells: c.source = c.source.replace("overrides = {}\n", "").replace("overrides=overrides, ", "")
    nbformat.write(nb, str(path))
    r = cli("run", "tiny", "tiny2", "-p", "n=4")
    assert r.returncode == 2 and "tiny2 takes no preset values from -p: its parameters cell has no `overrides`" in r.stderr


def test_run_started_from_a_bare_shell_gives_its_kernels_the_pinned_numerics(tiny_book, tmp_path):
    import subprocess
    from minirepro.core.repro import mkl_needs_preload, numerics_env
    pins = numerics_env("ci")
    bare = {k: v for k, v in os.environ.items() if k not in pins}   # no pins, no MKL preload: a user's own shell
    r = subprocess.run([str(BIN/"minirepro"), "run", "tiny", "--out", str(tmp_path)], env=bare, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path/"tiny"/"ci-seed0"/"results.json").read_text())["provenance"]["numerics"] == "portable"
    printed = subprocess.run([str(BIN/"minirepro"), "env"], env=bare, capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0 and "export MKL_CBWR=AVX2,STRICT" in printed.stdout
    assert ("export LD_PRELOAD=" in printed.stdout) == ("LD_PRELOAD" in pins) and ("LD_PRELOAD" in pins) == mkl_needs_preload()


def test_a_failing_chapter_exits_1_and_leaves_no_results(tiny_book, tmp_path):
    r = cli("run", "tiny", "tiny2", "-p", "fail=true", "--out", tmp_path)
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "RuntimeError: asked to fail" in r.stdout and "0/2 chapter runs executed" in r.stdout
    assert not list(tmp_path.rglob("results.json"))


def test_parallel_jobs_run_every_chapter(tiny_book, tmp_path):
    r = cli("run", "--all", "--jobs", "2", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2/2 chapter runs executed, 2/2 claims hold" in r.stdout
    assert {p.parent.parent.name for p in tmp_path.rglob("results.json")} == {"tiny", "tiny2"}


def test_record_then_verify_then_a_changed_record_fails(tiny_book, tmp_path):
    r = cli("run", "tiny", "--record")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = tiny_book/"papers"/"tiny"/"results"/"ci.json"
    assert json.loads(rec.read_text())["metrics"]["value"] == 6
    assert (tiny_book/"papers"/"tiny"/"figures"/"line.png").exists()
    nb = nbformat.read(str(tiny_book/"nbs"/"papers"/"tiny.ipynb"), as_version=4)  # executed back into the chapter
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code) and "parameters" in code[0].metadata["tags"]
    assert not any("papermill" in c.metadata for c in nb.cells) and "papermill" not in nb.metadata
    assert "| I | [tiny](nbs/papers/tiny.ipynb): A tiny chapter | C | 1/1 | 1/1 | - |" in (tiny_book/"README.md").read_text()

    r = cli("run", "tiny", "--out", tmp_path)  # a fresh run matches the record
    assert cli("verify", "tiny", "--from", tmp_path).returncode == 0
    data = json.loads(rec.read_text()); data["metrics"]["value"] = 6.01; rec.write_text(json.dumps(data))
    r = cli("verify", "tiny", "--from", tmp_path)
    assert r.returncode == 1 and "metric value: 6 differs from recorded 6.01" in r.stdout


def test_verify_at_another_seed_compares_that_seeds_recorded_claims(tiny_book, tmp_path):
    assert cli("run", "tiny", "--seeds", "0-1", "--record").returncode == 0
    assert cli("run", "tiny", "--seeds", "1-2", "--out", tmp_path).returncode == 0
    r = cli("verify", "tiny", "--from", tmp_path, "--seed", "1")
    assert r.returncode == 0 and "matches the record (ci, seed 1: the claims recorded for this seed" in r.stdout, r.stdout
    rec = tiny_book/"papers"/"tiny"/"results"/"seeds-ci.json"
    data = json.loads(rec.read_text()); data["seeds"]["1"]["claims"]["big-enough"]["measured"] = 7.5; rec.write_text(json.dumps(data))
    r = cli("verify", "tiny", "--from", tmp_path, "--seed", "1")
    assert r.returncode == 1 and "claim big-enough measured: 7 differs from recorded 7.5" in r.stdout, r.stdout
    r = cli("verify", "tiny", "--from", tmp_path, "--seed", "2")
    assert r.returncode == 1 and "seed 2: not recorded at scale ci (recorded seeds: 0, 1)" in r.stdout, r.stdout


def test_record_at_full_scale_runs_full_and_leaves_the_chapter_alone(tiny_book, tmp_path):
    chapter = tiny_book/"nbs"/"papers"/"tiny.ipynb"
    before = chapter.read_text()
    r = cli("run", "tiny", "--scale", "full", "--record", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads((tiny_book/"papers"/"tiny"/"results"/"full.json").read_text())
    assert rec["scale"] == "full" and rec["metrics"]["value"] == 60  # the full preset (n = 30), not the chapter's ci default
    assert (tiny_book/"papers"/"tiny"/"figures"/"full"/"line.png").exists()
    assert not (tiny_book/"papers"/"tiny"/"results"/"ci.json").exists() and chapter.read_text() == before


def test_verify_without_a_run(tiny_book, tmp_path):
    cli("run", "tiny", "--record")
    r = cli("verify", "tiny", "--from", tmp_path)
    assert r.returncode == 1 and "wrote no results.json" in r.stdout


def test_report_rewrites_only_the_marked_section(tiny_book):
    assert cli("report").returncode == 0
    txt = (tiny_book/"README.md").read_text()
    assert txt.startswith("# Tiny book\n\n<!-- status:begin -->\n2 of 3 chapters written") and txt.endswith("<!-- status:end -->\n\nEnd.\n")
    assert "STALE" not in txt and (tiny_book/"papers"/"README.md").exists()
    assert cli("report").returncode == 0 and (tiny_book/"README.md").read_text() == txt  # idempotent


def test_report_marks_a_full_record_made_on_the_cpu(tiny_book):
    r = cli("run", "tiny", "--scale", "full", "--record")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tiny_book/"papers"/"tiny"/"results"/"full.json").read_text())["device"] == "cpu"
    assert cli("report").returncode == 0
    row = next(l for l in (tiny_book/"papers"/"README.md").read_text().splitlines() if l.startswith("| I | [tiny]"))
    assert row.split(" | ")[5] == "1/1 (CPU)", row
    assert row.split(" | ")[6] == "1/1", row   # seeds at full: seed 0, every claim held


def test_report_names_the_processor_of_the_ci_walls(tiny_book):
    assert cli("report").returncode == 0
    assert "processor" not in (tiny_book/"README.md").read_text()   # no ci record yet: no wall to explain
    r = cli("run", "tiny", "--record")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cli("report").returncode == 0
    model = cpu_info().get("model name")
    head = (tiny_book/"README.md").read_text().split("<!-- status:begin -->\n", 1)[1].split("\n", 1)[0]
    assert (f"ci wall: seconds of the recorded ci run on one thread (the records' processor: {model};" in head) == bool(model), head


def test_report_marks_a_full_record_whose_preset_has_changed(tiny_book):
    assert cli("run", "tiny", "--scale", "full", "--record").returncode == 0
    yml = tiny_book/"papers"/"tiny"/"paper.yaml"
    yml.write_text(yml.read_text().replace("full: {n: 30}", "full: {n: 40}"))  # the design changes after the run
    assert cli("report").returncode == 0
    row = next(l for l in (tiny_book/"papers"/"README.md").read_text().splitlines() if l.startswith("| I | [tiny]"))
    assert row.split(" | ")[5] == "1/1 (CPU, older preset)", row


def sleeping(*out_nbs, wait_s: float = 120) -> bool:
    "Whether one of the executed notebooks `out_nbs` reaches its sleep cell within `wait_s` (papermill saves each as a cell starts)."
    def running(nb):
        try: cells = json.loads(nb.read_text())["cells"]
        except (OSError, ValueError, KeyError): return False
        return any("time.sleep" in "".join(c["source"]) and c["metadata"].get("papermill", {}).get("status") == "running"
                   for c in cells)
    deadline = time.time() + wait_s
    while time.time() < deadline and not any(map(running, out_nbs)): time.sleep(0.2)
    return any(map(running, out_nbs))


def test_interrupted_run_leaves_no_results_and_exits_130(tiny_book, tmp_path):
    # as from a terminal: SIGINT at its default disposition (a test runner's worker may ignore it, and children inherit that)
    p = subprocess.Popen([str(BIN/"minirepro"), "run", "tiny", "-p", "sleep_s=60", "--out", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(), start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert sleeping(tmp_path/"tiny"/"ci-seed0.ipynb"), "the chapter never reached its sleep"
    time.sleep(1)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    assert "interrupted" in err and not list(tmp_path.rglob("results.json"))


@pytest.mark.parametrize("jobs,group", [(1, False), (2, False), (1, True), (2, True)])
def test_sigterm_stops_a_run_like_ctrl_c_and_leaves_no_process(tiny_book, tmp_path, jobs, group):
    # kill PID reaches the minirepro process alone (not its kernels or workers, unlike Ctrl-C in a terminal); timeout
    # and batch systems signal the whole process group, so the workers have it too, and then the main process's own
    import psutil
    p = subprocess.Popen([str(BIN/"minirepro"), "run", "tiny", "tiny2", "-p", "sleep_s=60", "--jobs", str(jobs), "--out", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(), start_new_session=True)
    assert sleeping(tmp_path/"tiny"/"ci-seed0.ipynb", tmp_path/"tiny2"/"ci-seed0.ipynb"), "no chapter reached its sleep"
    time.sleep(1)
    family = psutil.Process(p.pid).children(recursive=True)
    assert any("ipykernel" in " ".join(c.cmdline()) for c in family)
    t0 = time.time()
    if group: os.killpg(p.pid, signal.SIGTERM)
    else: p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted" in err, (p.returncode, out, err)
    assert time.time() - t0 < 9, time.time() - t0        # stopped, not waited out
    assert "Traceback" not in err and "[IPKernelApp]" not in err and "never awaited" not in err, err   # nothing but the message
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [" ".join(c.cmdline())[:80] for c in alive]
    assert not list(tmp_path.rglob("results.json"))


def test_seeds_run_every_seed_and_record_their_claims(tiny_book, tmp_path):
    r = cli("run", "tiny", "--seeds", "0-2", "--jobs", "2", "--record", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3/3 chapter runs executed, 3/3 claims hold" in r.stdout
    seeds = json.loads((tiny_book/"papers"/"tiny"/"results"/"seeds-ci.json").read_text())["seeds"]
    assert list(seeds) == ["0", "1", "2"] and seeds["2"]["claims"]["big-enough"] == {"holds": True, "measured": 8}
    assert seeds["2"]["device"] == "cpu"  # a seed run on other hardware than the reference says so
    assert json.loads((tiny_book/"papers"/"tiny"/"results"/"ci.json").read_text())["seed"] == 0  # seed 0 is the reference
    assert "| C | 1/1 | 3/3 | - |" in (tiny_book/"README.md").read_text()
    assert "recorded: the reference (seed 0) and each seed's claims in papers/<slug>/results/seeds-ci.json" in r.stdout


def test_recording_other_seeds_leaves_the_reference_alone(tiny_book, tmp_path):
    assert cli("run", "tiny", "--record").returncode == 0
    reference = (tiny_book/"papers"/"tiny"/"results"/"ci.json").read_text()
    r = cli("run", "tiny", "--seeds", "3", "--record", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "recorded: each seed's claims in papers/<slug>/results/seeds-ci.json" in r.stdout and "reference" not in r.stdout
    assert (tiny_book/"papers"/"tiny"/"results"/"ci.json").read_text() == reference
    assert list(json.loads((tiny_book/"papers"/"tiny"/"results"/"seeds-ci.json").read_text())["seeds"]) == ["0", "3"]


_TRAINER = ("from minirepro.core.train import train\n"
            "h = train(model, data, P.steps, 8, 0.01, loss_fn=lambda m, b: m(b['x']).pow(2).mean(),\n"
            "          eval_fn=lambda m, step: {'loss': 0.0}, eval_every=P.steps // 4)\n"
            "metrics = {'steps_done': h.last_step + 1}\n")
_OWN_LOOP = ("from minirepro.core.repro import training_steps\n"
             "opt, done, g = torch.optim.SGD(model.parameters(), lr=0.01), 0, torch.Generator().manual_seed(0)\n"
             "for step in training_steps(P.steps, model, 8):\n"
             "    loss = model(data(step, g)['x']).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step(); done += 1\n"
             "metrics = {'steps_done': done}\n")


def _add_chapter(book, slug: str, title: str, scales: str, claim: str, code: str):
    "Add a one-claim chapter to `book`: its paper.yaml (`scales`, `claim`) and a notebook that runs `code` after setup."
    (book/"papers"/"book.yaml").write_text((book/"papers"/"book.yaml").read_text()
                                           + f"      - {{slug: {slug}, fidelity: C, title: {title}}}\n")
    (book/"papers"/slug).mkdir()
    (book/"papers"/slug/"paper.yaml").write_text(
        f"slug: {slug}\ntitle: {title}\nfidelity: C\nscales:\n{scales}claims:\n  - {claim}\n")
    cells = [nbformat.v4.new_code_cell('scale = "ci"\nseed = 0\ndevice = "auto"'),
             nbformat.v4.new_code_cell(
                 "import torch\nfrom minirepro.core.repro import setup\nfrom minirepro.core.results import check_claims, finish\n"
                 f"run = setup({slug!r}, scale, seed, device)\nP = run.P\n" + code
                 + "finish(run, metrics, check_claims(run.paper, metrics))")]
    cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(book/"nbs"/"papers"/f"{slug}.ipynb"))


def _training_chapter(book, slug="trainy", loop=_TRAINER):
    """A chapter that trains with minirepro's trainer (or `loop`, code that sets `metrics`): ci 40 steps, full 200,000
    steps with an evaluation every 50,000."""
    _add_chapter(book, slug, "Trains", "  ci: {steps: 40}\n  full: {steps: 200000}\n",
                 "{id: trained, statement: s, paper_value: '1', metric: steps_done, op: '>=', threshold: 1}",
                 "model = torch.nn.Linear(4, 1)\ndata = lambda step, g: {'x': torch.randn(8, 4, generator=g)}\n" + loop)


def test_estimate_times_a_few_steps_of_each_training_run_and_records_nothing(tiny_book, tmp_path):
    _training_chapter(tiny_book)
    t0 = time.time()
    r = cli("estimate", "trainy", "--steps", "5", "--device", "cpu", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.time() - t0 < 120   # 8 steps ran, not 200,000
    line = json.loads((tmp_path/"trainy-full-times.jsonl").read_text())
    assert line["steps"] == 200_000 and line["evals"] == 4 and line["step_s"] > 0
    assert abs(line["estimate_s"] - (200_000 * line["step_s"] + 4 * line["eval_s"])) < 1e-6
    assert "200,000" in r.stdout and "trainy: about" in r.stdout and "the full budget is 600 s" in r.stdout
    assert not (tiny_book/"papers"/"trainy"/"results").exists()   # an estimate is never a record


def test_estimate_shortens_a_chapters_own_loop_counted_by_training_steps(tiny_book, tmp_path):
    _training_chapter(tiny_book, "loopy", _OWN_LOOP)
    r = cli("estimate", "loopy", "--steps", "5", "--device", "cpu", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    line = json.loads((tmp_path/"loopy-full-times.jsonl").read_text())
    assert line["steps"] == 200_000 and line["batch"] == 8 and line["evals"] == 0 and line["model"] == "Linear"
    assert "200,000" in r.stdout and "nothing was shortened" not in r.stdout


def test_estimate_says_when_nothing_could_be_shortened(tiny_book, tmp_path):
    r = cli("estimate", "tiny", "--scale", "ci", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tiny: about" in r.stdout and "nothing was shortened" in r.stdout
    assert not (tiny_book/"papers"/"tiny"/"results").exists()


def _parts_chapter(book, slug="parts"):
    "A chapter of two resumable arms that draw random numbers, and a draw after them."
    _add_chapter(book, slug, "Parts", "  ci: {arms: 2}\n  full: {arms: 2}\n",
                 "{id: ran, statement: s, paper_value: '2', metric: arms_done, op: '>=', threshold: 2}",
                 "arm = lambda i: {'i': i, 'draw': torch.rand(1).item()}\n"
                 "out = [run.resumable(f'arm {i}', arm, i) for i in range(P.arms)]\n"
                 "metrics = {'arms_done': len(out), 'draws': [o['draw'] for o in out], 'after': torch.rand(1).item()}\n")


def test_run_resume_takes_the_finished_parts_and_continues_as_an_uninterrupted_run(tiny_book):
    _parts_chapter(tiny_book)
    res = lambda: json.loads((tiny_book/"build"/"runs"/"parts"/"full-seed0"/"results.json").read_text())
    assert cli("run", "parts", "--scale", "full", "--device", "cpu").returncode == 0
    first = res()
    assert "resumed" not in first and len(list((tiny_book/"build"/"runs"/"parts"/"full-seed0"/"parts").glob("*.pt"))) == 2
    r = cli("run", "parts", "--scale", "full", "--device", "cpu", "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    again = res()
    assert again["metrics"] == first["metrics"] and list(again["resumed"]) == ["arm 0", "arm 1"]
    nb = tiny_book/"nbs"/"papers"/"parts.ipynb"                              # the chapter's code changes:
    nb.write_text(nb.read_text().replace("'after': torch.rand(1).item()", "'after': torch.rand(2).sum().item()"))
    assert cli("run", "parts", "--scale", "full", "--device", "cpu", "--resume").returncode == 0
    assert "resumed" not in res()                                            # its parts are computed again
    assert cli("run", "parts", "--device", "cpu", "--resume").returncode == 0   # ci keeps no parts
    assert not (tiny_book/"build"/"runs"/"parts"/"ci-seed0"/"parts").exists()


def test_wheelhouse_lists_what_the_book_needs_at_run_time_without_pytorch(tiny_book):
    from importlib import metadata
    from minirepro.core.cli import runtime_requirements
    need = runtime_requirements()
    assert {"transformers", "papermill", "nbclient", "ipykernel", "datasets", "bm25s"} <= set(need)
    assert need["transformers"] == metadata.version("transformers") and need["papermill"] == metadata.version("papermill")
    assert "torch" not in need and "minirepro" not in need
    assert not [k for k in need if k.startswith("nvidia-") or k == "triton"]   # reached only through torch
    assert "torch" in runtime_requirements(leave_out=())
    assert "pytest" not in need and "nbdev" not in need                        # the dev extra is not run time
    r = cli("wheelhouse", "--list", "--skip", "Transformers")
    assert r.returncode == 0, r.stderr
    names = [l.split("==")[0] for l in r.stdout.splitlines()]
    assert "papermill" in names and "transformers" not in names and len(names) == len(need) - 1


def test_wheel_platforms_name_every_older_c_library():
    from minirepro.core.cli import wheel_platforms
    tags = wheel_platforms("2.28", "x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_29_x86_64" not in tags and len(tags) == 12 + 3


def test_wheelhouse_builds_a_missing_wheel_only_for_pure_python(tmp_path, monkeypatch):
    import subprocess
    from minirepro.core import cli as C
    monkeypatch.setattr(C, "runtime_requirements", lambda *a, **k: {"haswheel": "1.0", "pure": "2.0", "compiled": "3.0"})
    def fake_run(cmd, **kw):
        name, version = cmd[-1].split("==")
        folder = Path(cmd[cmd.index("-d" if "download" in cmd else "-w") + 1])
        if "download" in cmd:
            if name != "haswheel": return subprocess.CompletedProcess(cmd, 1, "", "no matching distribution")
            (folder/f"{name}-{version}-cp312-cp312-manylinux_2_17_x86_64.whl").touch()
        else:
            tag = "py3-none-any" if name == "pure" else "cp311-cp311-linux_x86_64"
            (folder/f"{name}-{version}-{tag}.whl").touch()
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="not pure Python: compiled==3.0$"):
        C.build_wheelhouse(tmp_path, "3.12", "2.28", "x86_64", quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haswheel-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                                                          "pure-2.0-py3-none-any.whl"]
    monkeypatch.setattr(C, "runtime_requirements", lambda *a, **k: {"haswheel": "1.0", "pure": "2.0"})
    assert len(C.build_wheelhouse(tmp_path/"again", "3.12", "2.28", "x86_64", quiet=True)) == 2
    with pytest.raises(ValueError, match="2.17 or newer"): C.build_wheelhouse(tmp_path/"bad", "3.12", "1.0", quiet=True)
    assert not (tmp_path/"bad").exists()   # a wrong version leaves no folder behind


def test_parallel_runs_split_the_cores_where_a_scale_takes_them_all(monkeypatch):
    import configparser
    from minirepro.core.cli import thread_env
    settings = configparser.ConfigParser()
    settings.read_string("[book]\nthreads = 1\n[scale:ci]\nthreads = 1\n[scale:full]\nthreads = 0\n")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert thread_env("ci", settings, jobs=4) == {"OMP_NUM_THREADS": "1"}    # a pinned scale keeps its setting
    assert thread_env("full", settings, jobs=1) == {}                        # one run: the library's default, every core
    assert thread_env("full", settings, jobs=3) == {"OMP_NUM_THREADS": "5"}  # three runs share 16 cores
    assert thread_env("full", settings, jobs=32) == {"OMP_NUM_THREADS": "1"} # never fewer than one
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert thread_env("full", settings, jobs=3) == {}                        # the user's own setting wins


def test_an_interrupted_record_keeps_the_finished_seeds_in_the_status_tables(tiny_book, tmp_path):
    # seed 0 finishes and is recorded; seed 1 sleeps until it is interrupted (--record takes no -p, so the chapter itself
    # sleeps at seed 1)
    path = tiny_book/"nbs"/"papers"/"tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "time.sleep(sleep_s)" in c.source)
    cell.source = cell.source.replace("time.sleep(sleep_s)", "time.sleep(60 if seed == 1 else sleep_s)")
    nbformat.write(nb, str(path))
    p = subprocess.Popen([str(BIN/"minirepro"), "run", "tiny", "--seeds", "0-1", "--record", "--out", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(), start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert sleeping(tmp_path/"tiny"/"ci-seed1.ipynb", wait_s=180), "seed 1 never reached its sleep"
    time.sleep(1)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    assert list(json.loads((tiny_book/"papers"/"tiny"/"results"/"seeds-ci.json").read_text())["seeds"]) == ["0"]
    readme = (tiny_book/"README.md").read_text()
    assert "STALE" not in readme and "| C | 1/1 | 1/1 | - |" in readme, readme
