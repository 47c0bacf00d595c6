"""Rotted checkpoint bytes, checksums of every output, strict metrics.json
and finished results that a rerun must not silently make worse."""

import json
import math
import os

import pytest

from experiments import atomic
from tests.faults.conftest import error_line
from tests.faults.conftest import read_json
from tests.faults.conftest import run_args
from tests.faults.conftest import run_cli


def _rot(path, offset=None):
    """Zeroes 64 bytes in the middle of a file (inside the weights: the
    HDF5 file stays readable, only its values change)."""
    data = bytearray(open(path, "rb").read())
    offset = len(data) // 2 if offset is None else offset
    data[offset : offset + 64] = bytes(64)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits_dir):
    """A finished run with export, and its first metrics."""
    from experiments import cli

    out = tmp_path_factory.mktemp("checksums") / "run"
    assert cli.main(run_args(out, digits_dir, export=True)) == 0
    return out, read_json(out / "metrics.json")


def test_every_output_is_checksummed(finished):
    out, _ = finished
    outputs = read_json(out / "run.json")["outputs"]
    assert set(outputs) == {"model.keras", "saved_model/1"}
    for name, entry in outputs.items():
        assert entry["sha256"] == atomic.sha256(out / name), name
        assert entry["bytes"] == atomic.size_of(out / name), name
    record = read_json(out / "checkpoints" / "training_metadata.json")
    for commit in (record, record["previous"]):
        path = out / "checkpoints" / commit["weights"]
        assert commit["sha256"] == atomic.sha256(path)


def test_rotted_checkpoint_falls_back_to_the_previous_one(
    finished, digits_dir, capsys
):
    out, first = finished
    record = read_json(out / "checkpoints" / "training_metadata.json")
    _rot(out / "checkpoints" / record["weights"])

    status, text, _ = run_cli(run_args(out, digits_dir, export=True), capsys)

    assert status == 0
    warnings = [line for line in text.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "SHA-256" in warnings[0], text
    assert "Resuming from the checkpoint of epoch 1/2" in text
    again = read_json(out / "metrics.json")
    assert again["resumed_from_epoch"] == 1
    # Epoch 2 was trained again from the intact epoch-1 state.
    assert again["test_accuracy"] == first["test_accuracy"]
    assert not os.path.exists(out / "metrics.previous.json")
    outputs = read_json(out / "run.json")["outputs"]
    assert outputs["model.keras"]["sha256"] == atomic.sha256(
        out / "model.keras"
    )


def test_worse_rerun_results_are_announced_and_kept(
    finished, digits_dir, capsys
):
    out, _ = finished
    # Results better than this model can reach: the rerun must say so.
    metrics = read_json(out / "metrics.json")
    better = {**metrics, "test_accuracy": 1.0}
    atomic.write_json(str(out / "metrics.json"), better)

    status, text, _ = run_cli(run_args(out, digits_dir, export=True), capsys)

    assert status == 0
    assert "is worse than the 1.0" in text
    assert read_json(out / "metrics.previous.json") == better
    assert read_json(out / "metrics.json")["notes"]


def test_all_checkpoints_rotted_is_one_line_exit_2(
    tmp_path, digits_dir, capsys
):
    out = tmp_path / "run"
    args = run_args(out, digits_dir)
    assert run_cli(args, capsys)[0] == 0
    record = read_json(out / "checkpoints" / "training_metadata.json")
    for commit in (record, record["previous"]):
        _rot(out / "checkpoints" / commit["weights"])
    before = read_json(out / "metrics.json")

    status, _, err = run_cli(args, capsys)

    assert status == 2
    line = error_line(err)
    assert "Cannot resume" in line and "SHA-256" in line
    assert read_json(out / "metrics.json") == before  # results untouched
    # The message's remedy works: without checkpoints the run restarts.
    for name in os.listdir(out / "checkpoints"):
        os.remove(out / "checkpoints" / name)
    assert run_cli(args, capsys)[0] == 0


def test_metrics_json_is_strict(tmp_path):
    path = tmp_path / "metrics.json"
    atomic.write_json(
        str(path),
        {"test_loss": float("nan"), "bleu": [1.0, float("inf")], "ok": 2},
    )
    text = path.read_text()

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    data = json.loads(text, parse_constant=refuse)
    assert data["test_loss"] is None and data["bleu"] == [1.0, None]
    assert data["ok"] == 2
    assert "test_loss (nan)" in data["notes"][0]
    assert "bleu[1] (inf)" in data["notes"][0]


def test_sha256_of_a_folder_ignores_its_location(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "variables").mkdir(parents=True)
        (tmp_path / name / "variables" / "data").write_bytes(b"weights")
        (tmp_path / name / "saved_model.pb").write_bytes(b"graph")
    assert atomic.sha256(tmp_path / "a") == atomic.sha256(tmp_path / "b")
    (tmp_path / "b" / "variables" / "data").write_bytes(b"weightz")
    assert atomic.sha256(tmp_path / "a") != atomic.sha256(tmp_path / "b")
    assert not math.isnan(atomic.size_of(tmp_path / "a"))


def test_damaged_output_is_not_reused(tmp_path, capsys):
    from experiments import rundir
    from tests.experiments.conftest import tiny_config

    config = tiny_config()
    out = tmp_path / "run"
    with rundir.RunDir(str(out), config) as run_dir:
        atomic.write_text(run_dir.file("model.keras"), "the model")
        run_dir.record_output("model.keras")
        atomic.write_json(run_dir.file("metrics.json"), {"test_accuracy": 1})
    assert rundir.finished_metrics(str(out), config) == {"test_accuracy": 1}
    (out / "model.keras").write_text("the modem")
    assert rundir.finished_metrics(str(out), config) is None
    assert "differs from its recorded SHA-256" in capsys.readouterr().out
