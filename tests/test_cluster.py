"""`minirepro run --executor ray|slurm`: a local Ray instance and submitit's local executor stand in for clusters."""
import json, subprocess, sys
from pathlib import Path

import nbformat
import pytest

from conftest import cli
from minirepro.core import cluster

pytest.importorskip("ray"); pytest.importorskip("submitit")


def _results(out, slugs, seed=0):
    res = {}
    for s in slugs:
        r = json.loads((Path(out)/s/f"ci-seed{seed}"/"results.json").read_text())
        res[s] = ({k: v for k, v in r["metrics"].items() if not k.startswith("latency")}, [c["holds"] for c in r["claims"]])
    return res


def _settings(book, **kw):
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(book/"settings.ini")
    if not cfg.has_section("cluster"): cfg.add_section("cluster")
    for k, v in kw.items(): cfg["cluster"][k] = str(v)
    with open(book/"settings.ini", "w") as f: cfg.write(f)


def test_ray_runs_two_chapters_with_the_local_executors_results(tiny_book, tmp_path):
    _settings(tiny_book, ray_cpus=2)
    r = cli("run", "tiny", "tiny2", "--executor", "ray", "--out", tmp_path/"ray")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2/2 chapter runs executed, 2/2 claims hold" in r.stdout
    assert "chapter  seed  claims  wall s  where" in r.stdout and r.stdout.count("ray:") >= 2
    loc = cli("run", "tiny", "tiny2", "--out", tmp_path/"local")
    assert loc.returncode == 0 and "local:" in loc.stdout
    assert _results(tmp_path/"ray", ["tiny", "tiny2"]) == _results(tmp_path/"local", ["tiny", "tiny2"])
    assert (tmp_path/"ray"/"tiny"/"ci-seed0"/"figures"/"line.png").exists() and (tmp_path/"ray"/"tiny"/"ci-seed0.ipynb").exists()
    assert not list((tmp_path/"ray").glob(".minirepro-*"))  # the shared-filesystem marker is cleaned up


def test_slurm_through_submitit_runs_seeds_and_reports_a_failing_chapter(tiny_book, tmp_path):
    _settings(tiny_book, submitit_cluster="local", folder=tmp_path/"jobs", poll_s=0.5)
    nb_path = tiny_book/"nbs"/"papers"/"tiny2.ipynb"  # tiny2 now fails by default
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("fail = False", "fail = True")
    nbformat.write(nb, str(nb_path))
    r = cli("run", "tiny", "tiny2", "--seeds", "0-1", "--executor", "slurm", "--out", tmp_path/"slurm")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2/4 chapter runs executed" in r.stdout and r.stdout.count("FAILED") >= 4  # two lines and two table rows
    assert "RuntimeError: asked to fail" in r.stdout and "slurm job" in r.stdout
    assert not list((tmp_path/"slurm"/"tiny2").rglob("results.json"))
    loc = cli("run", "tiny", "--seeds", "0-1", "--out", tmp_path/"local")
    for seed in (0, 1):
        assert _results(tmp_path/"slurm", ["tiny"], seed) == _results(tmp_path/"local", ["tiny"], seed)


def test_without_a_shared_filesystem_the_files_travel_back(tiny_book, tmp_path):
    # neither the submitter's output folder nor its checkout's path exist on this "worker": MINIREPRO_ROOT finds the book
    kw = dict(scale="ci", device="auto", params={}, out=str(tmp_path/"worker-view"), root=str(tmp_path/"elsewhere"/"book"))
    info = cluster.run_job("tiny", 3, kw, marker=".not-visible-here")
    assert info["ok"] and "ci-seed3/results.json" in "".join(info["files"]) and not (tmp_path/"worker-view").exists()
    info = cluster.collect(info, tmp_path/"submitter")
    assert json.loads((tmp_path/"submitter"/"tiny"/"ci-seed3"/"results.json").read_text())["metrics"]["value"] == 9
    assert Path(info["notebook"]).exists() and (tmp_path/"submitter"/"tiny"/"ci-seed3"/"figures"/"line.png").exists()
    assert "files" not in info


class _Job:
    def __init__(self, result, state="COMPLETED"):
        self._result, self.state, self.job_id = result, state, f"j{id(self) % 1000}"
    def done(self): return True
    def result(self):
        if isinstance(self._result, Exception): raise self._result
        return self._result
    def cancel(self, check=False): pass


class _Executor:
    "Stands in for submitit: the first job of each chapter is preempted, every later one completes."
    def __init__(self): self.submitted = []
    def submit(self, fn, slug, seed, kw, marker):
        self.submitted.append(slug)
        if self.submitted.count(slug) == 1: return _Job(RuntimeError("job preempted"), "PREEMPTED")
        return _Job({"slug": slug, "scale": "ci", "seed": seed, "ok": True, "error": None, "wall_s": 1.0, "notebook": "nb",
                     "run_dir": "d", "claims_hold": 1, "claims_total": 1, "budget_s": None, "host": "node7"})


def test_a_preempted_slurm_job_is_resubmitted_once(tmp_path):
    ex, seen = _Executor(), []
    cfg = {**cluster.CLUSTER_DEFAULTS, "poll_s": "0"}
    infos = cluster.run_slurm([("a", 0), ("b", 0)], {"out": str(tmp_path), "scale": "ci", "root": str(tmp_path)}, seen.append, cfg, executor=ex)
    assert ex.submitted == ["a", "b", "a", "b"] and all(i["ok"] for i in infos) and len(seen) == 2
    assert infos[0]["where"].startswith("slurm job") and infos[0]["where"].endswith(":node7")


def test_slurm_script_asks_for_the_resources():
    cfg = {**cluster.CLUSTER_DEFAULTS, "partition": "gpu", "time_min": "30", "cpus_per_task": "4", "mem_gb": "32"}
    full = cluster.slurm_script(cfg, "full")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=32GB", "#SBATCH --job-name=minirepro"):
        assert line in full, full
    assert "--gpus-per-node" not in cluster.slurm_script(cfg, "ci")


def test_error_paths(tiny_book, tmp_path):
    r = cli("run", "tiny", "--executor", "k8s")
    assert r.returncode == 2 and "invalid choice: 'k8s'" in r.stderr and "local" in r.stderr
    r = cli("run", "tiny", "--executor", "ray", "--record")
    assert r.returncode == 2 and "--executor local" in r.stderr
    code = ("import sys; sys.modules['ray'] = None; sys.modules['submitit'] = None\n"
            "from minirepro.core.cli import main\n"
            "print(main(['run', 'tiny', '--executor', sys.argv[1], '--out', sys.argv[2]]))")
    for ex, pkg in (("ray", "ray"), ("slurm", "submitit")):
        p = subprocess.run([sys.executable, "-c", code, ex, str(tmp_path)], capture_output=True, text=True)
        assert p.stdout.strip().endswith("2"), p.stdout + p.stderr
        assert f"the {ex} executor needs the package {pkg}" in p.stderr and "pip install 'minirepro[cluster]'" in p.stderr


def test_report_seeds_summarises_claims_per_seed(tiny_book, tmp_path):
    assert cli("run", "tiny", "--seeds", "0-2", "--record", "--out", tmp_path).returncode == 0
    r = cli("report", "--seeds")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["chapter", "seed", "0", "seed", "1", "seed", "2", "seeds", "with", "every", "claim"]
    assert lines[2].split() == ["tiny", "1/1", "1/1", "1/1", "3/3"]


def test_ctrl_c_cancels_the_submitted_slurm_jobs(tiny_book, tmp_path):
    import os, signal, time
    _settings(tiny_book, submitit_cluster="local", folder=tmp_path/"jobs", poll_s=0.5)
    out = tmp_path/"out"
    p = subprocess.Popen([str(Path(sys.executable).parent/"minirepro"), "run", "tiny", "-p", "sleep_s=20", "--executor", "slurm",
                          "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    nb, deadline = out/"tiny"/"ci-seed0.ipynb", time.time() + 120
    while time.time() < deadline and not (nb.exists() and "time.sleep" in nb.read_text()): time.sleep(0.3)
    assert nb.exists(), "the job never started its chapter"
    time.sleep(2)
    os.kill(p.pid, signal.SIGINT)  # the submitting command only: the job must be cancelled by it, not by the signal
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in err, err
    time.sleep(25)  # had the job gone on, its chapter would have finished its 20 s sleep and written results.json by now
    assert not list(out.rglob("results.json"))
