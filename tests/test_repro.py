import os, random, re
from pathlib import Path

import numpy as np
import pytest
import torch

from minirepro.core import repro
from minirepro.core.repro import (Preset, UnknownName, book_index, chapter_path, chapter_slugs, claims_at, find_root, load_paper,
                                  resolve_device, run_dir, scale_names, scale_settings, seed_everything, setup)


def test_find_root_from_a_subfolder(root, monkeypatch):
    monkeypatch.delenv("MINIREPRO_ROOT", raising=False)
    monkeypatch.chdir(root/"nbs"/"papers")
    assert find_root() == root


def test_find_root_override(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_ROOT", str(tmp_path))
    assert find_root() == tmp_path.resolve()


def test_scales_come_from_settings():
    assert scale_names() == ["ci", "full"]
    ci = scale_settings("ci")
    assert ci["device"] == "cpu" and ci.getint("threads") == 1 and ci.getboolean("deterministic")
    assert scale_settings("full")["device"] == "cuda"


def test_unknown_scale_names_the_valid_ones():
    with pytest.raises(UnknownName, match=r"unknown scale 'fulll' \(did you mean full\?\); valid scales: ci, full"):
        scale_settings("fulll")


def test_book_index_has_every_paper_once():
    idx = book_index()
    assert len(idx) == 89 and len({p["slug"] for p in idx}) == 89
    assert {p["part"] for p in idx} == {"I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"}
    assert all(p["fidelity"] in "ABC" for p in idx)


def test_chapter_path_errors():
    assert chapter_path("aaren").name == "aaren.ipynb"
    with pytest.raises(UnknownName, match="valid papers: .*aaren"):
        chapter_path("no-such-paper")
    planned = [p["slug"] for p in book_index() if p["slug"] not in chapter_slugs()]
    with pytest.raises(UnknownName, match="not written yet"):
        chapter_path(planned[0])  # in the book, no chapter yet


def test_every_chapter_has_a_record_with_presets_for_every_scale():
    for slug in chapter_slugs():
        paper = load_paper(slug)
        assert set(paper["scales"]) == set(scale_names()), slug
        keys = [set(p) for p in paper["scales"].values()]
        assert all(k == keys[0] for k in keys), f"{slug}: every scale must set the same sizes"
        assert paper["claims"], slug
        for c in paper["claims"]:
            assert {"id", "statement", "paper_value", "metric", "op", "threshold"} <= set(c), (slug, c)
            assert set(c.get("scales", [])) <= set(scale_names()), (slug, c["id"], "unknown scale")
        assert all(claims_at(paper, sc) for sc in scale_names()), f"{slug}: every scale checks at least one claim"


def test_a_run_checks_only_the_claims_of_its_scale(tmp_path):
    paper = {"claims": [{"id": "a"}, {"id": "b", "scales": ["full"]}, {"id": "c", "scales": ["ci", "full"]}]}
    assert [c["id"] for c in claims_at(paper, "ci")] == ["a", "c"]
    assert [c["id"] for c in claims_at(paper, "full")] == ["a", "b", "c"]


def test_preset_reads_as_attributes():
    P = Preset(steps=3)
    assert P.steps == 3 and P["steps"] == 3
    with pytest.raises(AttributeError, match="it has: steps"):
        P.width


def test_seed_everything_makes_all_generators_repeat():
    seed_everything(11); a = (random.random(), np.random.rand(), torch.rand(2))
    seed_everything(11); b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_resolve_device():
    assert resolve_device("auto", "ci") == "cpu"
    assert resolve_device("cpu", "full") == "cpu"
    with pytest.raises(UnknownName, match="valid devices: auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="falling back to the CPU"):
            assert resolve_device("auto", "full") == "cpu"
        with pytest.raises(RuntimeError, match="no GPU"):
            resolve_device("cuda", "ci")


def test_run_dir_overrides(tmp_path, monkeypatch, root):
    monkeypatch.delenv("MINIREPRO_RUN_DIR", raising=False)
    monkeypatch.delenv("MINIREPRO_OUT", raising=False)
    assert run_dir("aaren", "ci", 3) == root/"build"/"runs"/"aaren"/"ci-seed3"
    monkeypatch.setenv("MINIREPRO_OUT", str(tmp_path))
    assert run_dir("aaren", "full", 0) == tmp_path/"aaren"/"full-seed0"
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path/"x"))
    assert run_dir("aaren", "ci", 0) == (tmp_path/"x").resolve()


def test_setup_seeds_sets_threads_and_clears_stale_results(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    (tmp_path/"figures").mkdir()
    (tmp_path/"results.json").write_text("{}"); (tmp_path/"figures"/"old.png").write_bytes(b"x")
    run = setup("aaren", "ci", seed=7, quiet=True, knob=1)
    first = torch.rand(3)
    assert not (tmp_path/"results.json").exists() and not list((tmp_path/"figures").glob("*.png"))
    assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert run.seed == 7 and run.params == {"knob": 1} and run.P.d == load_paper("aaren")["scales"]["ci"]["d"]
    setup("aaren", "ci", seed=7, quiet=True)
    assert torch.equal(first, torch.rand(3))


def test_tf32_matmuls_only_on_a_gpu_at_a_scale_that_allows_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    threads = torch.get_num_threads()
    try:
        assert scale_settings("full")["matmul_precision"] == "high"
        for scale, device, want in [("full", "cuda", "high"), ("full", "cpu", "highest"), ("ci", "cuda", "highest")]:
            monkeypatch.setattr(repro, "resolve_device", lambda *a, device=device: device)
            setup("aaren", scale, quiet=True)
            assert torch.get_float32_matmul_precision() == want, (scale, device)
    finally:
        torch.set_float32_matmul_precision("highest"); torch.set_num_threads(threads); torch.use_deterministic_algorithms(False)


def test_numerics_come_from_settings_and_a_malformed_entry_is_named(tmp_path):
    env = repro.numerics_env("ci")
    assert env["MKL_CBWR"] == "AVX2,STRICT" and env["ATEN_CPU_CAPABILITY"] == "avx2" and "NPY_DISABLE_CPU_FEATURES" in env
    assert repro.numerics_env("full") == {}   # full keeps each processor's fastest kernels
    (tmp_path/"settings.ini").write_text("[book]\n[scale:ci]\nnumerics = MKL_CBWR=AVX2 oops\n")
    with pytest.raises(ValueError, match="'oops' is not NAME=VALUE"): repro.numerics_env("ci", repro.load_settings(tmp_path))


PROBE = ("import warnings, sys; sys.path.insert(0, {lib!r}); {pre}"
         "from minirepro.core.repro import use_numerics; import torch\n"
         "with warnings.catch_warnings(record=True) as w:\n"
         "    warnings.simplefilter('always'); got = use_numerics('ci')\n"
         "print(got, torch.backends.mkldnn.enabled, torch.backends.cpu.get_cpu_capability(), '|'.join(str(x.message) for x in w))")


def _probe(root, env, pre=""):
    import subprocess, sys
    r = subprocess.run([sys.executable, "-c", PROBE.format(lib=str(root/"lib"), pre=pre)], env=env, cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.rstrip("\n")


def test_a_kernel_started_with_the_numerics_runs_portable_and_one_without_is_warned(root):
    pins = repro.numerics_env("ci")
    bare = {k: v for k, v in os.environ.items() if k not in pins}
    out = _probe(root, {**bare, **pins})
    assert out == "portable False AVX2 ", out   # and no warning
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT": pytest.skip("this processor has no AVX2")
    # numpy imported before the pins: its SIMD level is already fixed, and setup says so (where this processor has a
    # feature the pins turn off; on one without them, such as an AVX2-only AMD EPYC, numpy computes the same anyway)
    off = pins.get("NPY_DISABLE_CPU_FEATURES", "").replace(",", " ").split()
    # whether numpy uses a feature the pins turn off, asked of a process started without them (this one, or the test
    # worker it runs in, may have started with them, which hides those features from its own numpy)
    import subprocess, sys
    ask = f"from numpy._core._multiarray_umath import __cpu_features__ as f; print(any(f.get(x) for x in {off!r}))"
    r = subprocess.run([sys.executable, "-c", ask], env=bare, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() in ("True", "False"), r.stderr
    # (bare also lacks the MKL preload, which a processor MKL does not take for Intel's needs from the start)
    late = _probe(root, bare, pre="import numpy; ")
    numpy_late, mkl_late = r.stdout.strip() == "True", repro.mkl_needs_preload()
    if not (numpy_late or mkl_late):
        assert late == "portable False AVX2 ", late
        return
    assert late.startswith("partial False AVX2 ") and "may differ from the recorded outputs" in late, late
    assert ("NPY_DISABLE_CPU_FEATURES" in late) == numpy_late and ("MKL_CBWR (MKL does not take" in late) == mkl_late, late


MKL_PROBE = "import torch; a = torch.randn(64, 64); a @ a"


def _mkl_branch(env):
    import subprocess, sys
    r = subprocess.run([sys.executable, "-c", MKL_PROBE], env={**env, "MKL_VERBOSE": "1"}, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    found = set(re.findall(r"CNR:([A-Z0-9_]+)", r.stdout + r.stderr))
    assert len(found) == 1, (found, r.stdout[-2000:])
    return found.pop()


def test_the_ci_numerics_put_mkl_on_its_avx2_branch_on_any_x86_processor():
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkl.is_available():
        pytest.skip("no MKL here")
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT": pytest.skip("this processor has no AVX2")
    pins = repro.numerics_env("ci")
    if repro.mkl_needs_preload() and "LD_PRELOAD" not in pins: pytest.fail("no C compiler to build the MKL preload")
    bare = {k: v for k, v in os.environ.items() if k not in pins}
    assert _mkl_branch({**bare, **pins}) == "AVX2"
    # without the preload, MKL ignores MKL_CBWR wherever it does not take the processor for Intel's
    no_preload = {**bare, **repro.numerics_env("ci", preload=False)}
    assert _mkl_branch(no_preload) == ("AUTO" if repro.mkl_needs_preload() else "AVX2")


def test_the_mkl_library_is_built_once_and_joins_the_preloads_already_asked(tmp_path, monkeypatch):
    import shutil, sys
    if not (shutil.which("cc") or shutil.which("gcc")): pytest.skip("no C compiler")
    monkeypatch.setattr(sys, "prefix", str(tmp_path/"venv")); monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.setenv("HOME", str(tmp_path/"home"))
    assert repro.mkl_shim(build=False) is None
    shim = repro.mkl_shim()
    assert shim == tmp_path/"venv"/"lib"/repro.MKL_SHIM_NAME and shim.stat().st_size > 0
    assert repro.mkl_shim(build=False) == shim and not list(shim.parent.glob(".*"))  # nothing half-built left
    monkeypatch.setattr(repro, "mkl_needs_preload", lambda: True)
    monkeypatch.setenv("LD_PRELOAD", f"/opt/a.so {shim}")
    assert repro.numerics_env("ci")["LD_PRELOAD"] == f"{shim}:/opt/a.so"   # once, first, the others kept
    assert "LD_PRELOAD" not in repro.numerics_env("full") and "LD_PRELOAD" not in repro.numerics_env("ci", preload=False)
    monkeypatch.setattr(repro, "mkl_shim_loaded", lambda: False)
    monkeypatch.setenv("LD_PRELOAD", "")
    off = repro.numerics_off(repro.numerics_env("ci"))
    assert any(o.startswith("MKL_CBWR (MKL does not take") and str(shim) in o for o in off), off
    monkeypatch.setattr(repro, "mkl_needs_preload", lambda: False)
    assert "LD_PRELOAD" not in repro.numerics_env("ci")                 # Intel's processors need nothing


def test_setup_records_the_numerics_of_the_run(tmp_path, monkeypatch):
    import warnings
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    try:
        run = setup("aaren", "full", device="cpu", quiet=True)
        assert run.provenance["numerics"] == "native" and torch.backends.mkldnn.enabled
        with warnings.catch_warnings(): warnings.simplefilter("ignore"); run = setup("aaren", "ci", quiet=True)
        assert not torch.backends.mkldnn.enabled
        assert run.provenance["numerics"] == ("partial" if repro.numerics_off(repro.numerics_env("ci")) else "portable")
    finally: torch.backends.mkldnn.enabled = True; torch.use_deterministic_algorithms(False)


def test_training_steps_is_range_outside_timing_mode_and_times_a_few_steps_inside(tmp_path, monkeypatch):
    import json
    from minirepro.core.repro import TIME_LOG_ENV, TIME_STEPS_ENV, training_steps
    m = torch.nn.Linear(3, 2)
    assert list(training_steps(500, m, 4)) == list(range(500))
    log = tmp_path/"times.jsonl"
    monkeypatch.setenv(TIME_STEPS_ENV, "4"); monkeypatch.setenv(TIME_LOG_ENV, str(log))
    assert list(training_steps(500, m, 4)) == list(range(7))        # 3 warm-up steps + 4 timed ones
    assert list(training_steps(7, m)) == list(range(7))             # nothing to shorten: runs whole, not logged
    broke = next(iter(training_steps(500, m)))                       # a loop that stops early logs nothing
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    assert broke == 0 and len(lines) == 1 and lines[0]["steps"] == 500 and lines[0]["params"] == 8
    assert lines[0]["estimate_s"] == pytest.approx(500 * lines[0]["step_s"]) and lines[0]["measured_s"] >= 0


def _resumable_run(tmp_path, monkeypatch, resume: bool, seed: int = 1):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    monkeypatch.setenv(repro.RESUME_ENV, "1" if resume else "")
    r = setup("aaren", "ci", seed=seed, quiet=True)
    r.keeps_parts = True  # as at a resumable scale
    return r


def test_resumable_parts_are_taken_back_only_with_resume_and_the_same_code_and_settings(tmp_path, monkeypatch):
    calls = []
    def arm(n):
        calls.append(n); return {"n": n, "w": torch.randn(3)}
    r1 = _resumable_run(tmp_path, monkeypatch, resume=False)
    a = r1.resumable("arm n=2", arm, 2); after1 = (random.random(), np.random.rand(), torch.rand(1))
    assert (tmp_path/"parts"/"arm_n=2.pt").exists() and not r1.resumed
    r2 = _resumable_run(tmp_path, monkeypatch, resume=True)
    b = r2.resumable("arm n=2", arm, 2); after2 = (random.random(), np.random.rand(), torch.rand(1))
    assert calls == [2] and torch.equal(a["w"], b["w"]) and list(r2.resumed) == ["arm n=2"]
    assert after1[:2] == after2[:2] and torch.equal(after1[2], after2[2])   # every generator goes on as it would have
    r3 = _resumable_run(tmp_path, monkeypatch, resume=False)               # without --resume: computed again
    r3.resumable("arm n=2", arm, 2)
    assert calls == [2, 2]
    r4 = _resumable_run(tmp_path, monkeypatch, resume=True, seed=2)        # another seed: not the same part
    r4.resumable("arm n=2", arm, 2)
    assert calls == [2, 2, 2] and not r4.resumed
    with pytest.raises(ValueError, match="each part needs its own name"): r4.resumable("arm n=2", arm, 2)


def test_resumable_part_off_at_ci_and_in_timing_mode_and_survives_an_unpicklable_value(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    r = setup("aaren", "ci", seed=0, quiet=True)
    assert not r.keeps_parts and r.resumable("x", lambda: 5) == 5 and not (tmp_path/"parts").exists()
    r = _resumable_run(tmp_path, monkeypatch, resume=True)
    monkeypatch.setenv(repro.TIME_STEPS_ENV, "3")
    assert r.resumable("timed", lambda: 1) == 1 and not (tmp_path/"parts").exists()   # estimates are never kept
    monkeypatch.delenv(repro.TIME_STEPS_ENV)
    with pytest.warns(UserWarning, match="could not be kept"):
        f = r.resumable("closure", lambda: (lambda: 7))
    assert f() == 7 and not list((tmp_path/"parts").glob("*"))              # no half-written file left behind
