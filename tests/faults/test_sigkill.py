"""SIGKILL inside each write (checkpoint, `model.keras`, export, metrics):
the folder keeps its last good state, and rerunning the same command
completes it with no temporary left behind."""

import os
import signal
import time

import pytest

from experiments import atomic
from tests.experiments import processes
from tests.faults.conftest import read_json
from tests.faults.conftest import run_args
from tests.faults.conftest import temporaries

# stage: epoch of the last committed checkpoint when the kill comes
STAGES = {"checkpoint": 1, "model.keras": 2, "export": 2, "metrics": 2}


def _wait_for(path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, f"the child exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.slow  # two child processes per stage
@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_inside_a_write(stage, tmp_path, digits_dir):
    out = tmp_path / "run"
    marker = tmp_path / "paused"
    args = run_args(out, digits_dir, export=True)
    child = processes.start_cli(
        [str(marker), stage, *args],
        str(tmp_path / "killed.log"),
        script=os.path.join(os.path.dirname(__file__), "kill_child.py"),
    )
    try:
        _wait_for(marker, child)
        assert temporaries(out), "the kill must come mid-write"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        processes.wait_all([child])

    record = read_json(out / "checkpoints" / "training_metadata.json")
    assert record["epoch"] == STAGES[stage]
    weights = out / "checkpoints" / record["weights"]
    assert atomic.sha256(weights) == record["sha256"]
    assert not (out / "metrics.json").exists()

    log = tmp_path / "rerun.log"
    status = processes.wait_all([processes.start_cli(args, str(log))])[0]
    assert status == 0, processes.read_log(str(log))
    assert temporaries(out) == []
    metrics = read_json(out / "metrics.json")
    assert metrics["resumed_from_epoch"] == STAGES[stage]
    outputs = read_json(out / "run.json")["outputs"]
    for name in ("model.keras", "saved_model/1"):
        assert outputs[name]["sha256"] == atomic.sha256(out / name)
