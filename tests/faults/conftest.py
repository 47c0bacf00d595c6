"""Fixtures and helpers of the fault-injection suite.

Every fault test injects one fault into a tiny digits run (4 training
steps per epoch of a one-block MLP-Mixer) and checks what the user gets:
the exit status, one `error:` line and no traceback, the last good state
of the run folder intact, and a next run that completes.
"""

import json
import os
import shutil

import pytest

from tests.experiments.conftest import digits_dir  # noqa: F401
from tests.experiments.processes import TINY_MIXER

EPOCHS = 2


def run_args(out, data_dir, *settings, epochs=EPOCHS, export=False, eager=True):
    """`python -m experiments` arguments of a tiny, seeded digits run
    (eager by default: tracing would cost more than the few steps)."""
    return [
        "run",
        "digits_mixer_tiny",
        "--epochs",
        str(epochs),
        "--seed",
        "7",
        "--deterministic",
        "--set",
        *TINY_MIXER,
        f"export={str(export).lower()}",
        f"train.run_eagerly={str(eager).lower()}",
        *settings,
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--quiet",
    ]


def run_cli(argv, capsys):
    """Runs the command line in this process: `(status, stdout, stderr)`."""
    from experiments import cli

    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def error_line(output):
    """The one `error:` line of a failed run's output.

    Asserts there is no traceback, exactly one `error:` line, and nothing
    after it (the message is a single line).
    """
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, output
    assert lines[-1] == errors[0], output
    return errors[0]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def snapshot(folder):
    """`{relative path: bytes}` of every file under `folder`."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def temporaries(folder):
    """Temporary files or folders left anywhere under `folder`."""
    from experiments import atomic

    return [
        os.path.join(root, name)
        for root, folders, names in os.walk(folder)
        for name in [*folders, *names]
        if atomic.is_temporary(name)
    ]


@pytest.fixture
def data_copy(tmp_path, digits_dir):  # noqa: F811
    """A private copy of the prepared digits data (to damage)."""
    target = tmp_path / "tfds"
    shutil.copytree(digits_dir, target)
    return target
