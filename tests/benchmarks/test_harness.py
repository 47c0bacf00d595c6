"""Tests of the benchmark harness: statistics, the report, the registry,
the runner's error handling, and one real `--quick` run of a tiny
benchmark (the matmul limit) through the command line."""

import json
import os

import numpy as np
import pytest

from benchmarks import cli
from benchmarks import registry
from benchmarks import report
from benchmarks import runner
from benchmarks import stats
from benchmarks.suite.transformer_mfu import transformer_flops

pytestmark = pytest.mark.tf_only

# === Statistics ===


def test_summarize_matches_numpy():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    s = stats.summarize(samples)
    assert s["median"] == pytest.approx(np.median(samples))
    assert s["p25"] == pytest.approx(np.percentile(samples, 25))
    assert s["iqr"] == pytest.approx(s["p75"] - s["p25"])
    assert (s["min"], s["max"], s["n"]) == (1.0, 10.0, 6)


@pytest.mark.parametrize(
    "samples, match",
    [([], "samples=\\[\\]"), ([1.0, float("nan")], "must be finite")],
)
def test_summarize_rejects_bad_samples(samples, match):
    with pytest.raises(ValueError, match=match):
        stats.summarize(samples)


def test_ratio_of_medians_and_paired_ratios():
    baseline = [10.0, 20.0, 12.0]
    candidate = [5.0, 10.0, 4.0]
    r = stats.ratio(baseline, candidate)
    assert r["speedup"] == pytest.approx(12.0 / 5.0)
    # Paired: per-round ratios 2, 2, 3 -> median 2.
    assert r["paired"]["median"] == pytest.approx(2.0)
    assert stats.ratio(baseline, [5.0, 6.0])["paired"] is None


def test_meets_and_its_arguments():
    assert stats.meets(1.3, 1.25, ">=") is True
    assert stats.meets(1.2, 1.25, ">=") is False
    assert stats.meets(0.2, 0.25, "<=") is True
    assert stats.meets(None, 1.0, ">=") is None
    assert stats.meets(float("nan"), 1.0, ">=") is None
    with pytest.raises(ValueError, match="Received: '>'"):
        stats.meets(1.0, 1.0, ">")


def test_goal_records_the_verdict():
    g = registry.goal("x >= 1", 0.9, 1.0, ">=", measured="0.9x")
    assert g["met"] is False and g["measured"] == "0.9x"


def test_transformer_flops_counts_the_matmuls():
    # batch 2, 3 tokens, D 4, F 8, one block, 2 classes, by hand:
    tokens = 6
    forward = 2 * tokens * (4 * 16 + 2 * 4 * 8) + 4 * tokens * 3 * 4
    forward += 2 * 2 * 4 * 2
    assert transformer_flops(2, 3, 4, 8, 1, 2) == 3 * forward


# === Report formatting ===


def test_cells_format_numbers_and_missing_values():
    assert report.fmt(None) == "–"
    assert report.fmt(1234567) == "1,234,567"
    assert report.fmt(0.012345) == "0.0123"
    assert report.fmt(123.456) == "123"
    assert report.fmt(True) == "yes"
    assert report.fmt("a|b") == "a\\|b"
    assert report.fmt_ratio(1.234) == "1.23x"
    summary = {"median": 12.34, "p25": 11.9, "p75": 13.04}
    assert report.fmt_stat(summary) == "12.3 (11.9–13.0)"


def test_markdown_table_right_aligns_numeric_columns():
    table = report.markdown_table(["name", "ms"], [["a", 1.5], ["b", 20.0]])
    lines = table.splitlines()
    assert lines[0] == "| name | ms |"
    assert lines[1] == "|---|---:|"
    assert lines[3] == "| b | 20.0 |"


def _results(benchmarks):
    return {
        "harness": {
            "command": "python -m benchmarks run",
            "date": "2026-01-02",
            "quick": False,
            "device": "cpu",
            "wall_s": 12.0,
        },
        "machine": {
            "label": "test-cpu-2c",
            "cpu_model": "Test CPU",
            "cores": 2,
            "memory_gb": 8.0,
            "platform": "Linux x86_64",
            "versions": {"python": "3.11", "tensorflow": "2.x"},
            "matmul_gflops": 50.0,
        },
        "load_average": {"start": [3.5, 2.0, 1.0], "end": [3.0, 2.0, 1.0]},
        "benchmarks": benchmarks,
    }


def test_render_markdown_marks_goals_and_failures():
    ok = {
        "name": "fast",
        "number": "1",
        "title": "Fast thing",
        "goal": "speed-up >= 1.25x",
        "status": "ok",
        "wall_s": 3.0,
        "columns": ["case", "speed-up"],
        "rows": [["a", 1.5]],
        "goals": [
            registry.goal("speed-up >= 1.25x", 1.5, 1.25, ">=", "1.50x"),
        ],
        "notes": ["a note"],
    }
    failed = {
        "name": "broken",
        "number": "2",
        "title": "Broken thing",
        "goal": "ratio >= 1x",
        "status": "error",
        "reason": "Traceback ...\nRuntimeError: boom",
        "wall_s": 1.0,
    }
    text = report.render_markdown(_results({"broken": failed, "fast": ok}))
    assert "| 1 | fast | speed-up >= 1.25x | 1.50x | **met** |" in text
    assert "| 2 | broken | ratio >= 1x | error: RuntimeError: boom |" in text
    assert "not measured" in text
    assert text.index("## 1. Fast thing") < text.index("## 2. Broken thing")
    assert "50.0 GFLOP/s" in text and "other jobs shared the CPU" in text
    assert "- a note" in text


def test_results_files_are_written_atomically(tmp_path):
    results = _results({})
    json_path, md_path = report.write_results(results, str(tmp_path))
    assert os.path.basename(json_path) == "test-cpu-2c-2026-01-02.json"
    assert json.load(open(json_path))["machine"]["cores"] == 2
    assert open(md_path).read().startswith("# Benchmarks: test-cpu-2c")
    assert sorted(os.listdir(tmp_path)) == [
        "test-cpu-2c-2026-01-02.json",
        "test-cpu-2c-2026-01-02.md",
    ]


# === Registry, runner and command line ===


def test_unknown_benchmark_names_close_matches():
    assert registry.get_benchmark("8").name == "long_sequences"
    with pytest.raises(KeyError, match="Did you mean: self_attention"):
        registry.get_benchmark("self_atention")


def test_every_issue_benchmark_is_registered():
    numbers = {b.number for b in registry.list_benchmarks()}
    assert {str(n) for n in range(9)} <= numbers


def test_cli_errors_are_one_line_with_status_2(capsys, tmp_path):
    assert cli.main(["run", "no_such_bench", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown benchmark 'no_such_bench'")
    assert len(err.strip().splitlines()) == 1


def test_device_gpu_without_a_gpu_is_a_clear_error(
    monkeypatch, capsys, tmp_path
):
    monkeypatch.setattr(runner, "gpu_name", lambda: None)
    code = cli.main(
        ["run", "matmul", "--device", "gpu", "--out", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--device gpu: no GPU is visible" in err
    assert "use --device cpu" in err
    assert not os.listdir(tmp_path)


def _fake(name, fn, monkeypatch):
    bench = registry.Benchmark(name, "9", f"fake {name}", "", fn)
    monkeypatch.setitem(registry._REGISTRY, name, bench)


def test_a_failing_or_skipped_benchmark_is_recorded(monkeypatch, tmp_path):
    def boom(ctx):
        raise RuntimeError("boom")

    def skip(ctx):
        raise registry.Skip("needs a GPU")

    _fake("boom", boom, monkeypatch)
    _fake("skipper", skip, monkeypatch)
    path = str(tmp_path / "r.json")
    assert runner.run_child("boom", path, True, "cpu") == 1
    entry = json.load(open(path))
    assert (
        entry["status"] == "error" and "RuntimeError: boom" in entry["reason"]
    )
    assert runner.run_child("skipper", path, True, "cpu") == 0
    entry = json.load(open(path))
    assert (entry["status"], entry["reason"]) == ("skipped", "needs a GPU")


def test_quick_run_of_the_matmul_limit_end_to_end(tmp_path, capsys):
    code = cli.main(
        [
            "run",
            "--quick",
            "matmul",
            "--machine",
            "ci box",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    files = sorted(os.listdir(tmp_path))
    assert files[0].startswith("ci-box-") and files[0].endswith("-quick.json")
    results = json.load(open(tmp_path / files[0]))
    entry = results["benchmarks"]["matmul"]
    assert entry["status"] == "ok", entry.get("reason")
    assert results["machine"]["matmul_gflops"] > 0
    assert results["harness"]["quick"] is True
    assert results["load_average"]["start"] is not None
    md = open(tmp_path / files[1]).read()
    assert "Machine limit (float32 matmul" in md and "1024 x 1024" in md
    assert "Written:" in capsys.readouterr().out


def test_report_names_the_runs_kept_results_came_from():
    results = _results({})
    results["harness"]["started"] = "T3"
    results["harness"]["provenance"] = {
        "a": {"command": "python -m benchmarks run", "started": "T1"},
        "b": {"command": "python -m benchmarks run b", "started": "T2"},
        "c": {"command": "python -m benchmarks run c", "started": "T3"},
    }
    text = report.render_markdown(results)
    assert (
        "Kept from the earlier run `python -m benchmarks run` (started T1): "
        "a. Kept from the earlier run `python -m benchmarks run b` (started "
        "T2): b." in text
    )
    assert "(started T3)" not in text


def test_a_loaded_machine_is_warned_about_and_recorded(
    monkeypatch, tmp_path, capsys
):
    from benchmarks import machine

    def quick(ctx):
        return registry.Result(columns=["x"], rows=[[1]])

    _fake("quiet_check", quick, monkeypatch)
    monkeypatch.setattr(machine, "cpu_count", lambda: 2)
    monkeypatch.setattr(machine, "load_average", lambda: [5.5, 4.0, 3.0])
    monkeypatch.setattr(
        runner,
        "_spawn",
        lambda name, *args: {
            "name": name,
            "number": "9",
            "title": "fake",
            "status": "ok",
            "wall_s": 0.1,
            "columns": ["x"],
            "rows": [[1]],
        },
    )
    _, md_path, results = runner.run(["quiet_check"], out_dir=str(tmp_path))
    assert results["load_warnings"] == [
        "run start: 1-minute load average 5.5 > 2 cores",
        "quiet_check: 1-minute load average 5.5 > 2 cores",
    ]
    assert "warning: run start: 1-minute load average 5.5 > 2 cores" in (
        capsys.readouterr().err
    )
    text = open(md_path).read()
    assert "**Warning: not a quiet machine.**" in text
    assert "quiet_check: 1-minute load average 5.5 > 2 cores" in text
    # A quiet machine: no warning anywhere.
    monkeypatch.setattr(machine, "load_average", lambda: [1.5, 1.0, 1.0])
    _, md_path, results = runner.run(["quiet_check"], out_dir=str(tmp_path))
    assert results["load_warnings"] == []
    assert "not a quiet machine" not in open(md_path).read()
    assert machine.load_warning("x", [2.0, 0, 0], 2) is None
