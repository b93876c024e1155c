import json, math, os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from minirepro.core import results as R
from minirepro.core.repro import UnknownName, setup

SPEC = {"claims": [
    dict(id="lt", statement="s", paper_value="p", metric="a", op="<", threshold=1.0),
    dict(id="ge", statement="s", paper_value="p", metric="b", op=">=", threshold=0.5),
    dict(id="eq", statement="s", paper_value="p", metric="c", op="==", threshold=1.0)]}


@pytest.mark.parametrize("a,b,c,expect", [(0.5, 0.5, 1.0, [True, True, True]), (1.0, 0.49, 1.5, [False, False, False]),
                                          (float("nan"), 0.6, 1.0, [False, True, True])])
def test_check_claims(a, b, c, expect):
    assert [x.holds for x in R.check_claims(SPEC, {"a": a, "b": b, "c": c})] == expect


def test_a_claim_without_its_metric_is_an_error():
    with pytest.raises(KeyError, match="needs metric 'b'"):
        R.check_claims(SPEC, {"a": 0.1, "c": 1.0})


def test_unknown_comparison():
    bad = {"claims": [dict(SPEC["claims"][0], op="<<")]}
    with pytest.raises(UnknownName):
        R.check_claims(bad, {"a": 0})


def test_fmt_rounds_and_floors_roundoff():
    assert R.fmt(0.123456) == "0.123" and R.fmt(1234567.0) == "1.23e+06" and R.fmt(3) == "3"
    assert R.fmt(2.2e-16) == "<1e-12" and R.fmt(0.0) == "0" and R.fmt(None) == "-" and R.fmt(False) == "no"


def test_format_table_aligns_numbers_right():
    t = R.format_table([{"name": "a", "x": 1.23456}, {"name": "bbb", "x": 10.0}]).splitlines()
    assert t[0] == "name     x" and t[2] == "a     1.23" and t[3] == "bbb     10"


def test_claims_table_counts():
    cs = R.check_claims(SPEC, {"a": 0.5, "b": 0.1, "c": 1.0})
    out = R.claims_table(cs)
    assert out.endswith("2/3 claims hold") and " NO" in out


def test_claims_table_prints_enough_digits_to_show_the_verdict():
    spec = {"claims": [{"id": "learned", "statement": "s", "paper_value": "p", "metric": "acc", "op": ">=", "threshold": 0.9},
                       {"id": "easy", "statement": "s", "paper_value": "p", "metric": "acc", "op": ">=", "threshold": 0.5}]}
    rows = R.claims_table(R.check_claims(spec, {"acc": 0.89962})).splitlines()
    assert "0.8996" in rows[2] and rows[2].endswith("NO")   # not "0.9  >= 0.9  NO"
    assert " 0.9 " in rows[3] + " " and rows[3].endswith("yes")   # three digits where they suffice


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    p = tmp_path/"results.json"
    R.atomic_write_json(p, {"v": 1})
    def boom(*a): raise KeyboardInterrupt
    monkeypatch.setattr(R.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        R.atomic_write_json(p, {"v": 2})
    assert json.loads(p.read_text()) == {"v": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


def test_atomic_write_text_writes_bytes_as_they_are(tmp_path):
    data = bytes(range(256))
    R.atomic_write_text(tmp_path/"a"/"blob.bin", data)
    R.atomic_write_text(tmp_path/"a"/"text.txt", "caf\u00e9\n")
    assert (tmp_path/"a"/"blob.bin").read_bytes() == data and (tmp_path/"a"/"text.txt").read_text() == "caf\u00e9\n"
    assert sorted(x.name for x in (tmp_path/"a").iterdir()) == ["blob.bin", "text.txt"]


def test_provenance_names_commit_and_versions():
    p = R.provenance()
    assert p["packages"]["torch"].startswith("2.") and p["python"] and p["platform"]
    assert p["git_commit"] is None or len(p["git_commit"]) == 40
    # the processor: float32 results depend on the kernels it selects
    assert isinstance(p["cpu"]["torch_capability"], str) and p["cpu"]["torch_capability"]
    assert set(p["cpu"].get("flags", [])) <= {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile"}


def _results(**metrics):
    return {"metrics": metrics, "claims": [{"id": "c", "holds": True, "op": "<", "threshold": 1}], "figures": {"f": {"y": [1.0, 2.0]}}}


def test_compare_results_tolerances():
    ref = _results(mse=0.5, latency_ms=1.0, tiny=1e-16)
    assert R.compare_results(_results(mse=0.5 * (1 + 1e-6), latency_ms=50.0, tiny=3e-16), ref, {"latency_*": "ignore", "tiny": {"atol": 1e-12}}) == []
    probs = R.compare_results(_results(mse=0.51, latency_ms=1.0, tiny=1e-16), ref, {"tiny": {"atol": 1e-12}})
    assert len(probs) == 1 and "metric mse" in probs[0]
    assert any("latency_ms" in p for p in R.compare_results(_results(mse=0.5, latency_ms=2.0, tiny=1e-16), ref, {"tiny": {"atol": 1e-12}}))


def test_compare_results_claims_and_figure_data():
    ref = _results(m=1.0)
    run = _results(m=1.0); run["claims"][0]["holds"] = False; run["figures"]["f"]["y"][1] = 2.5
    probs = R.compare_results(run, ref)
    assert any("claim c" in p for p in probs) and any("figure f" in p for p in probs)
    run = _results(m=1.0); run["claims"][0]["threshold"] = 2
    assert any("its test changed" in p for p in R.compare_results(run, ref))
    assert any("missing" in p for p in R.compare_results({"metrics": {}, "claims": [], "figures": {}}, ref))


def test_figures_saved_with_fixed_metadata_and_compared(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path/"run"))
    run = setup("aaren", "ci", quiet=True)
    def draw(y):
        fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], y); return fig
    p1 = R.save_figure(run, draw([0, 1]), "line", {"y": [0, 1]})
    b1 = p1.read_bytes(); R.save_figure(run, draw([0, 1]), "line", {"y": [0, 1]})
    assert p1.read_bytes() == b1 and b"Software" not in b1  # same numbers, same bytes
    ref = tmp_path/"ref"; ref.mkdir(); (ref/"line.png").write_bytes(b1)
    assert R.compare_figures(p1.parent, ref) == []
    R.save_figure(run, draw([1, 0]), "line")
    assert R.compare_figures(p1.parent, ref)[0].startswith("figure line.png: differs")
    (ref/"other.png").write_bytes(b1)
    assert any("other.png: missing" in p for p in R.compare_figures(p1.parent, ref))


def test_show_figure_saves_closes_and_displays_the_saved_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path/"run"))
    run = setup("aaren", "ci", quiet=True)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], [1, 0])
    assert R.show_figure(run, fig, "line", {"y": [1, 0]}) is None  # nothing for a notebook to echo
    path = run.out_dir/"figures"/"line.png"
    assert len(shown) == 1 and shown[0].data == path.read_bytes() and run.figures["line"] == {"y": [1, 0]}
    assert not plt.fignum_exists(fig.number)


def test_finish_writes_results_json(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    run = setup("aaren", "ci", seed=2, quiet=True)
    metrics = {m["metric"]: 0.0 for m in run.paper["claims"]}
    res = R.finish(run, metrics, quiet=True)
    on_disk = json.loads((tmp_path/"results.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    assert on_disk["seed"] == 2 and on_disk["scale"] == "ci" and on_disk["device"] == "cpu"
    assert {"git_commit", "packages", "python", "platform"} <= set(on_disk["provenance"])
    assert on_disk["provenance"]["float32_matmul"] == "highest"          # exact float32 on the CPU
    assert [c["id"] for c in on_disk["claims"]] == [c["id"] for c in run.paper["claims"]]
    assert all(isinstance(c["holds"], bool) for c in on_disk["claims"])


def test_a_run_given_a_gpu_it_never_used_is_recorded_as_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    run = setup("aaren", "ci", seed=0, quiet=True)
    metrics = {m["metric"]: 0.0 for m in run.paper["claims"]}
    run.device = "cuda"
    monkeypatch.setattr(R.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(R.torch.cuda, "max_memory_allocated", lambda *a: 0)
    monkeypatch.setattr(R, "provenance", lambda root: {})   # it would ask the (absent) GPU for its name
    with pytest.warns(UserWarning, match="computed on the CPU"):
        assert R.finish(run, metrics, quiet=True)["device"] == "cpu"
    monkeypatch.setattr(R.torch.cuda, "max_memory_allocated", lambda *a: 1 << 20)
    assert R.finish(run, metrics, quiet=True)["device"] == "cuda"


def test_provenance_is_taken_when_the_run_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_RUN_DIR", str(tmp_path))
    run = setup("aaren", "ci", seed=0, quiet=True)
    assert run.provenance["packages"]["torch"] and "cpu" in run.provenance
    started = run.provenance["git_commit"]
    monkeypatch.setattr(R, "provenance", lambda root: {"git_commit": "a commit made during the run"})
    res = R.finish(run, {m["metric"]: 0.0 for m in run.paper["claims"]}, quiet=True)
    assert res["provenance"]["git_commit"] == started and "cpu" in res["provenance"]
