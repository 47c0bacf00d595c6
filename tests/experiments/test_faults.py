"""Crash safety and determinism of `python -m experiments run`.

Three runs of the same command (`--seed 7 --deterministic`) start at once:
A and C run uninterrupted; B is SIGKILLed by this test in the middle of
epoch 2, then restarted with the very same command line. Determinism: A and
C give identical metrics. Crash safety: B resumes from its epoch-1
checkpoint and ends with exactly A's metrics.
"""

import csv
import os
import signal
import time

import pytest

from tests.experiments import processes
from tests.once import compute_once

EPOCHS = 3
KILL_AT = (2, 3)  # (epoch, step), 1-based: mid-epoch 2 of 4 steps
COMPARED = ("test_accuracy", "test_loss", "test_top5_accuracy")


def _args(out, digits_dir):
    return [
        "run",
        "digits_mixer_tiny",
        "--epochs",
        str(EPOCHS),
        "--seed",
        "7",
        "--deterministic",
        "--set",
        *processes.TINY_MIXER,
        "export=false",  # the export is tested elsewhere; saves seconds
        "--data-dir",
        digits_dir,
        "--out",
        out,
        "--quiet",
    ]


def _history(out):
    with open(os.path.join(out, "history.csv")) as f:
        return [
            {k: v for k, v in row.items() if k != "epoch_time_s"}
            for row in csv.DictReader(f)
        ]


def _wait_for(path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"the child exited early ({proc.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_dir):
    return compute_once(
        tmp_path_factory, "faults", lambda: _runs(tmp_path_factory, digits_dir)
    )


def _runs(tmp_path_factory, digits_dir):
    tmp = tmp_path_factory.mktemp("faults")
    outs = {k: str(tmp / k) for k in "ABC"}
    logs = {k: str(tmp / f"{k}.log") for k in ("A", "B-killed", "B", "C")}
    marker = str(tmp / "paused")
    a = processes.start_cli(_args(outs["A"], digits_dir), logs["A"])
    c = processes.start_cli(_args(outs["C"], digits_dir), logs["C"])
    killed = processes.start_cli(
        [marker, *map(str, KILL_AT), *_args(outs["B"], digits_dir)],
        logs["B-killed"],
        script=os.path.join(os.path.dirname(__file__), "pause_child.py"),
    )
    try:
        _wait_for(marker, killed)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=60)
        state = {
            "history": _history(outs["B"]),
            "checkpoint": processes.read_json(
                os.path.join(outs["B"], "checkpoints", "training_metadata.json")
            ),
            "has_metrics": os.path.exists(
                os.path.join(outs["B"], "metrics.json")
            ),
            "returncode": killed.returncode,
        }
        resumed = processes.start_cli(_args(outs["B"], digits_dir), logs["B"])
        codes = processes.wait_all([a, c, resumed])
    finally:
        processes.wait_all([a, c, killed])
    text = {k: processes.read_log(v) for k, v in logs.items()}
    assert codes == [0, 0, 0], "\n\n".join(t[-3000:] for t in text.values())
    metrics = {
        k: processes.read_json(os.path.join(v, "metrics.json"))
        for k, v in outs.items()
    }
    return outs, metrics, state, text


def test_sigkill_mid_epoch_leaves_last_checkpoint(runs):
    _, _, state, _ = runs
    assert state["returncode"] == -signal.SIGKILL
    assert not state["has_metrics"]
    assert state["checkpoint"]["epoch"] == 1  # epoch 2 was in progress
    assert [int(r["epoch"]) for r in state["history"]] == [1]


def test_restart_resumes_from_last_checkpoint(runs):
    outs, metrics, _, text = runs
    assert "Resuming from the checkpoint of epoch 1/3." in text["B"]
    assert metrics["B"]["resumed_from_epoch"] == 1
    assert metrics["B"]["epochs_run_by_this_process"] == EPOCHS - 1
    starts = processes.read_json(os.path.join(outs["B"], "run.json"))["starts"]
    assert [s["resumed_from_epoch"] for s in starts] == [0, 1]
    # No half-written files are left behind by the kill.
    for folder, _, files in os.walk(outs["B"]):
        assert not [f for f in files if f.startswith(".tmp")], folder


def test_resumed_run_ends_like_uninterrupted_run(runs):
    outs, metrics, _, _ = runs
    for key in COMPARED:
        assert metrics["B"][key] == metrics["A"][key], key
    assert _history(outs["B"]) == _history(outs["A"])


def test_same_seed_gives_identical_metrics(runs):
    outs, metrics, _, _ = runs
    for key in COMPARED:
        assert metrics["A"][key] == metrics["C"][key], key
    assert _history(outs["A"]) == _history(outs["C"])
    assert len(_history(outs["A"])) == EPOCHS
