"""A full disk (ENOSPC) at each write stage: one line, exit 2, the last
good checkpoint intact, no partial file, and a later run resumes."""

import errno
import os
import shutil
import subprocess

import keras
import pytest

from experiments import atomic
from tests.experiments import processes
from tests.faults.conftest import error_line
from tests.faults.conftest import read_json
from tests.faults.conftest import run_args
from tests.faults.conftest import run_cli
from tests.faults.conftest import temporaries

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def _fail_on_call(monkeypatch, owner, name, call=1, partial=True):
    """Patches `owner.name` so that its `call`-th call writes a few bytes
    to its path argument and raises ENOSPC (a disk filling up)."""
    real = getattr(owner, name)
    calls = []

    def writer(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            path = next(a for a in args if isinstance(a, (str, os.PathLike)))
            if partial:
                with open(path, "wb") as f:
                    f.write(b"\0" * 1000)
            raise ENOSPC
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, writer)


def _fail_metrics_write(monkeypatch):
    real = atomic.fsync_file

    def fsync_file(path):
        if path.endswith("metrics.json"):
            raise ENOSPC
        return real(path)

    monkeypatch.setattr(atomic, "fsync_file", fsync_file)


def _fail_export(monkeypatch):
    import tensorflow as tf

    def write_out(archive, path, *args, **kwargs):
        os.makedirs(os.path.join(path, "variables"))
        # TensorFlow reports ENOSPC as an error type of its own.
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{path}/variables; No space left on device"
        )

    # The backend's archive class (`ExportArchive()` returns a subclass).
    archive_class = type(keras.export.ExportArchive())
    monkeypatch.setattr(archive_class, "write_out", write_out)


STAGES = {
    # stage: (patch, epoch of the last good checkpoint, export)
    "checkpoint": (
        lambda mp: _fail_on_call(mp, keras.Model, "save_weights", call=2),
        1,
        False,
    ),
    "model.keras": (
        lambda mp: _fail_on_call(mp, keras.Model, "save"),
        2,
        False,
    ),
    "export": (_fail_export, 2, True),
    "metrics": (_fail_metrics_write, 2, False),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_disk_full_at_each_write_stage(
    stage, tmp_path, digits_dir, capsys, monkeypatch
):
    patch, good_epoch, export = STAGES[stage]
    out = tmp_path / "run"
    args = run_args(out, digits_dir, export=export)
    with monkeypatch.context() as mp:
        patch(mp)
        status, _, err = run_cli(args, capsys)

    assert status == 2
    line = error_line(err)
    assert "Disk full" in line and f"--out {out}" in line, line
    record = read_json(out / "checkpoints" / "training_metadata.json")
    assert record["epoch"] == good_epoch
    weights = out / "checkpoints" / record["weights"]
    assert atomic.sha256(weights) == record["sha256"]
    assert temporaries(out) == []
    assert not (out / "metrics.json").exists()

    status, text, _ = run_cli(args, capsys)
    assert status == 0
    assert f"Resuming from the checkpoint of epoch {good_epoch}/2" in text
    metrics = read_json(out / "metrics.json")
    assert metrics["resumed_from_epoch"] == good_epoch
    assert temporaries(out) == []


def test_write_too_large_for_the_disk_is_refused_before_writing(tmp_path):
    target = tmp_path / "huge.weights.h5"
    with pytest.raises(atomic.DiskFullError, match="needs about"):
        with atomic.replacing(str(target), size=1 << 60) as tmp:
            raise AssertionError(f"nothing may be written to {tmp}")
    assert os.listdir(tmp_path) == []


def test_disk_full_keeps_the_previous_content(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic.write_json(str(target), {"test_accuracy": 0.9})
    _fail_metrics_write(monkeypatch)
    with pytest.raises(atomic.DiskFullError, match=str(tmp_path)):
        atomic.write_json(str(target), {"test_accuracy": 0.1})
    assert read_json(target) == {"test_accuracy": 0.9}
    assert os.listdir(tmp_path) == ["metrics.json"]


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MiB tmpfs with 250 KiB left free (root only)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip(
            "mounting a tmpfs needs root; the patched-writer tests "
            "above inject the same ENOSPC"
        )
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode()}")
    try:
        filler = mount / "filler"
        free = shutil.disk_usage(mount).free
        with open(filler, "wb") as f:
            f.write(b"\0" * (free - (250 << 10)))
        yield mount, filler
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow  # two child processes: ~20 s of CPU
def test_real_full_disk_in_a_child_process(small_disk, tmp_path, digits_dir):
    # A child process: HDF5 can crash the whole process after a failed
    # write, which is what the space check before each checkpoint avoids.
    mount, filler = small_disk
    out = mount / "run"
    args = run_args(out, digits_dir)
    log = tmp_path / "full.log"
    status = processes.wait_all([processes.start_cli(args, str(log))])[0]
    text = processes.read_log(str(log))
    assert status == 2, text
    line = error_line(text)
    assert "Disk full" in line and str(out) in line, line
    assert temporaries(out) == []
    assert read_json(out / "run.json")["starts"]

    os.remove(filler)
    log = tmp_path / "resumed.log"
    status = processes.wait_all([processes.start_cli(args, str(log))])[0]
    assert status == 0, processes.read_log(str(log))
    assert read_json(out / "metrics.json")["epochs"] == 2
