"""Multi-worker training: two processes on 127.0.0.1 with `TF_CONFIG`
(`MultiWorkerMirroredStrategy`) against a single-process run."""

import csv
import json
import os

import pytest

from experiments import runner
from tests.experiments import processes
from tests.once import compute_once

# Loss of the same global batches: 2 replicas x 8 examples versus one of 16.
# The per-example losses are identical; only the order of the float32
# reduction differs (measured difference ~1e-7).
LOSS_RTOL = 1e-4


def _history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, digits_dir):
    return compute_once(
        tmp_path_factory,
        "multi_worker",
        lambda: _two_workers(tmp_path_factory, digits_dir),
    )


def _two_workers(tmp_path_factory, digits_dir):
    tmp = tmp_path_factory.mktemp("multi_worker")
    out = str(tmp / "run")
    ports = processes.free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    args = [
        "run",
        "digits_mixer_tiny",
        "--epochs",
        "1",
        "--set",
        *processes.TINY_MIXER,
        "--data-dir",
        digits_dir,
        "--out",
        out,
        "--strategy",
        "multi_worker",
        "--quiet",
    ]
    procs, logs = [], []
    for index in range(2):
        tf_config = {
            "cluster": cluster,
            "task": {"type": "worker", "index": index},
        }
        logs.append(str(tmp / f"worker{index}.log"))
        procs.append(
            processes.start_cli(
                args,
                logs[-1],
                env=processes.child_env(TF_CONFIG=json.dumps(tf_config)),
            )
        )
    # The single-process reference trains here meanwhile.
    try:
        reference = runner.run(
            runner.resolve(
                "digits_mixer_tiny",
                [*processes.TINY_MIXER, "export=false"],  # only the loss
                epochs=1,
            ),
            name="digits_mixer_tiny",
            out=str(tmp / "single"),
            data_dir=digits_dir,
            verbose=0,
        )
    finally:
        codes = processes.wait_all(procs)
    return out, codes, [processes.read_log(p) for p in logs], reference


def test_both_workers_finish(two_workers):
    out, codes, logs, _ = two_workers
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    assert "worker:1 finished; the chief writes the outputs." in logs[1]


def test_chief_writes_checkpoint_and_export(two_workers):
    out, _, _, _ = two_workers
    metrics = processes.read_json(os.path.join(out, "metrics.json"))
    assert metrics["num_workers"] == 2 and metrics["num_replicas"] == 2
    assert metrics["global_batch_size"] == 16
    assert os.path.exists(
        os.path.join(out, "saved_model", "1", "saved_model.pb")
    )
    record = processes.read_json(
        os.path.join(out, "checkpoints", "training_metadata.json")
    )
    assert record["epoch"] == 1
    assert os.path.exists(os.path.join(out, "checkpoints", record["weights"]))
    # The other worker wrote only into its private folder.
    worker = os.path.join(out, "workers", "worker-1")
    assert os.path.exists(os.path.join(worker, "history.csv"))
    assert not os.path.exists(os.path.join(worker, "saved_model"))
    assert not os.path.exists(os.path.join(worker, "metrics.json"))


def test_loss_matches_single_process(two_workers):
    out, _, _, reference = two_workers
    multi = _history(os.path.join(out, "history.csv"))
    single = _history(os.path.join(reference["run_dir"], "history.csv"))
    assert len(multi) == len(single) == 1
    for key in ("loss", "val_loss"):
        assert float(multi[0][key]) == pytest.approx(
            float(single[0][key]), rel=LOSS_RTOL
        ), key
    metrics = processes.read_json(os.path.join(out, "metrics.json"))
    assert metrics["test_loss"] == pytest.approx(
        reference["test_loss"], rel=LOSS_RTOL
    )
