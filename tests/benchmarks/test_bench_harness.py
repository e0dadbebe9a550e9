"""The benchmark harness: rows, percentiles, the runner's limits and the README table writer.

Timings are not asserted here (CI's `benchmarks/run.py --quick` smoke run exercises the benchmarks
themselves); these tests pin what the figures are made of and how they reach the docs.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
sys.path.insert(0, os.path.abspath(BENCH))

common = importlib.import_module("common")
run = importlib.import_module("run")
table = importlib.import_module("table")


def test_percentile_is_nearest_rank_and_p99_of_few_samples_is_the_maximum() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert common.percentile(values, 50) == 10.0
    assert common.percentile(values, 99) == 20.0
    assert common.pct_label(99, 20) == "p99 (= max of 20)"
    assert common.pct_label(99, 100) == "p99"
    assert common.percentile(list(map(float, range(1, 201))), 99) == 198.0


def test_row_computes_its_ratio_and_refuses_an_unsourced_published_baseline() -> None:
    row = common.Row("x", 30.0, "ms", "raw", 20.0, "same-run")
    assert row.ratio == pytest.approx(1.5)
    with pytest.raises(ValueError, match="needs its source"):
        common.Row("x", 1.0, "s", "upstream", 2.0, "published")
    with pytest.raises(ValueError, match="baseline_kind"):
        common.Row("x", 1.0, "s", "raw", 2.0, "guessed")
    with pytest.raises(ValueError, match="needs a baseline_kind"):
        common.Row("x", 1.0, "s", "raw", 2.0)


def test_every_listed_benchmark_has_rows_and_a_quick_limit() -> None:
    assert len({b.name for b in run.BENCHES}) == len(run.BENCHES)
    for bench in run.BENCHES:
        with open(os.path.join(BENCH, f"{bench.name}.py")) as f:
            source = f.read()
        assert "\ndef rows(quick: bool = False) -> list[Row]:" in source, bench.name
        assert 0 < bench.quick_timeout <= 150
    assert sum(b.quick_timeout for b in run.BENCHES) <= 15 * 60


def test_every_benchmark_module_is_listed() -> None:
    """A benchmark in benchmarks/ but not in run.BENCHES would never run (nor be smoke-tested in CI)."""
    modules = set()
    for name in os.listdir(BENCH):
        if name.endswith(".py"):
            with open(os.path.join(BENCH, name)) as f:
                if "\ndef rows(quick: bool = False) -> list[Row]:" in f.read():
                    modules.add(name[:-3])
    assert modules == {b.name for b in run.BENCHES}


def test_unknown_only_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.main(["--only", "nosuch"])
    assert "no benchmark named nosuch" in capsys.readouterr().err


def _report() -> dict:
    row = {"benchmark": "store", "name": "Store create", "value": 1000.0, "unit": "ops/s",
           "baseline": "raw | insert", "baseline_value": 2000.0, "ratio": 0.5, "baseline_kind": "published",
           "source": "somewhere", "samples": 3, "note": "", "load_start": [1.0, 1, 1], "load_end": [2.0, 1, 1]}  # fmt: skip
    return {"quick": True, "started": "T", "seconds": 1.0,
            "machine": {"cores": 2, "memory_gib": 4.0, "kernel": "k", "python": "3.11"},
            "benchmarks": [{"benchmark": "store", "status": "ok"},
                           {"benchmark": "proxy", "status": "ok", "skipped": "needs root"}],
            "rows": [row]}  # fmt: skip


def test_table_renders_rows_with_their_baseline_kind_and_skips() -> None:
    text = table.render(_report())
    assert "| store | Store create | 1,000 ops/s | raw \\| insert | 2,000 ops/s | 0.50x | published: somewhere | 3 |" in text
    assert "- `proxy`: needs root" in text


def test_table_is_written_between_the_markers_only(tmp_path) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(f"intro\n{table.START}\nold table\n{table.END}\noutro\n")
    data = tmp_path / "r.json"
    data.write_text(json.dumps(_report()))
    assert table.main([str(data), str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{table.END}\noutro\n")
    assert "old table" not in text and "Store create" in text
    bad = tmp_path / "bad.md"
    bad.write_text("no markers\n")
    with pytest.raises(SystemExit, match="bad.md"):
        table.main([str(data), str(bad)])
    assert bad.read_text() == "no markers\n"


def test_a_hung_benchmark_is_stopped_at_its_limit_and_its_cleanup_runs(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "cleaned"
    (tmp_path / "nbk_hang_bench.py").write_text(
        "import time\n"
        "def rows(quick=False):\n"
        "    try:\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        f"        open({str(marker)!r}, 'w').close()\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    res = run.run_one(run.Bench("nbk_hang_bench", 2, 2), True, 2)
    assert res["status"] == "timed out after 2 s"
    assert res["seconds"] < 20
    assert marker.exists()


def test_a_skipping_benchmark_reports_its_reason(tmp_path, monkeypatch) -> None:
    (tmp_path / "nbk_skip_bench.py").write_text(
        "from common import Skip\ndef rows(quick=False):\n    raise Skip('needs a unicorn')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    res = run.run_one(run.Bench("nbk_skip_bench", 30, 30), True, 30)
    assert res["status"] == "ok" and res["skipped"] == "needs a unicorn"


def test_the_runner_stopped_from_outside_stops_its_benchmark(tmp_path) -> None:
    import subprocess
    import time

    marker = tmp_path / "cleaned"
    (tmp_path / "nbk_hang_bench2.py").write_text(
        "import time\n"
        "def rows(quick=False):\n"
        "    try:\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        f"        open({str(marker)!r}, 'w').close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    # run.main only runs listed benchmarks: list the hanging one for this child process only
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import run; "
        "run.BENCHES[:] = [run.Bench('nbk_hang_bench2', 60, 60)]; run.BY_NAME.clear(); "
        "run.BY_NAME.update({b.name: b for b in run.BENCHES}); sys.exit(run.main(['--quick']))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, os.path.abspath(BENCH)], env=env)
    time.sleep(3)
    proc.terminate()
    assert proc.wait(30) != 0
    assert marker.exists()


def test_a_second_run_gets_its_own_table_with_its_own_run_line(tmp_path, capsys) -> None:
    first, second = _report(), _report()
    second["started"] = "LATER"
    second["rows"] = [{**second["rows"][0], "benchmark": "dns", "name": "DNS queries"}]
    paths = []
    for i, report in enumerate((first, second)):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(report))
    assert table.main([str(paths[0]), "--and", str(paths[1])]) == 0
    out = capsys.readouterr().out
    assert out.count("Run: ") == 2 and out.index("Store create") < out.index("at LATER") < out.index("DNS queries")


def test_start_cluster_waits_while_another_cluster_holds_the_node_names(monkeypatch, capsys) -> None:
    import time

    import nbkube.cluster
    from nbkube.errors import BadRequest

    calls: list[dict] = []

    class Taken:
        def __init__(self, **kwargs) -> None:
            calls.append(kwargs)
            if len(calls) < 3:
                raise BadRequest(f"Docker node node-1 {common.NODE_NAME_TAKEN}, in pid 1: stop that cluster first")

    monkeypatch.setattr(nbkube.cluster, "LocalCluster", Taken)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    assert isinstance(common.start_cluster(nodes=3, runtime="docker"), Taken)
    assert len(calls) == 3 and calls[0] == {"nodes": 3, "runtime": "docker"}
    assert capsys.readouterr().err.count("waiting up to 300 s for the node names") == 1

    class Refused:
        def __init__(self, **kwargs) -> None:
            raise BadRequest("nodes: must be >= 1")

    monkeypatch.setattr(nbkube.cluster, "LocalCluster", Refused)
    with pytest.raises(BadRequest, match="nodes: must be"):
        common.start_cluster(nodes=0)
