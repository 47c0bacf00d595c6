"""Truncated and garbled TFRecord files: one line naming the file and the
TFDS command that rebuilds it, exit 2, and a run folder that resumes once
the data is fixed."""

import glob
import os

import pytest

from tests.faults.conftest import error_line
from tests.faults.conftest import read_json
from tests.faults.conftest import run_args
from tests.faults.conftest import run_cli


def _garble(path):
    data = bytearray(open(path, "rb").read())
    data[200:260] = b"\xff" * 60  # inside the first records
    with open(path, "wb") as f:
        f.write(data)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(2000)


@pytest.mark.parametrize(
    "damage, split", [(_garble, "train"), (_truncate, "test")]
)
def test_damaged_tfrecord(
    damage, split, tmp_path, data_copy, digits_dir, capsys
):
    (record,) = glob.glob(str(data_copy / "digits" / "*" / f"*-{split}.*"))
    damage(record)
    out = tmp_path / "run"

    status, _, err = run_cli(run_args(out, data_copy), capsys)

    assert status == 2
    line = error_line(err)
    assert record in line
    command = "tfds build digits --imports experiments.datasets"
    assert f"{command} --data_dir {data_copy} --overwrite" in line
    assert f"--out {out}" in line
    assert not (out / "metrics.json").exists()
    assert not [n for n in os.listdir(out / "checkpoints") if ".tmp" in n]

    # With the data fixed (here: the intact copy) the same folder resumes.
    status, _, _ = run_cli(run_args(out, digits_dir), capsys)
    assert status == 0
    assert read_json(out / "metrics.json")["epochs"] == 2
