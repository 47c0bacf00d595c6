"""Smaller promises of a run: Ctrl-C names the folder to resume, an
untrained model is flagged, and file modes follow the umask."""

import os
import stat

import keras
import pytest

from experiments import runner
from experiments.errors import RunInterrupted
from tests.experiments.processes import TINY_MIXER
from tests.faults.conftest import read_json
from tests.faults.conftest import run_args
from tests.faults.conftest import run_cli


class CtrlC(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if batch == 1:
            raise KeyboardInterrupt


def _config(epochs=1):
    return runner.resolve(
        "digits_mixer_tiny",
        [*TINY_MIXER, "export=false", "train.run_eagerly=true"],
        epochs=epochs,
    )


def test_ctrl_c_names_the_run_folder(tmp_path, digits_dir):
    runs = tmp_path / "runs"
    with pytest.raises(RunInterrupted) as caught:
        runner.run(
            _config(),
            name="digits_mixer_tiny",
            runs_root=str(runs),
            data_dir=digits_dir,
            verbose=0,
            callbacks=[CtrlC()],
        )
    (folder,) = os.listdir(runs)
    message = str(caught.value)
    assert f"--out {runs / folder} " in message
    assert "<run folder>" not in message
    metrics = runner.run(
        _config(), out=str(runs / folder), data_dir=digits_dir, verbose=0
    )
    assert metrics["epochs"] == 1


def test_ctrl_c_message_on_the_command_line(monkeypatch, capsys):
    from experiments import cli

    def interrupted(*args, **kwargs):
        raise RunInterrupted("interrupted: rerun ... --out /runs/x-1 ...")

    monkeypatch.setattr(runner, "run", interrupted)
    assert cli.main(["run", "digits_mixer_tiny"]) == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted: rerun ... --out /runs/x-1 ..."
    )


def test_zero_epochs_warns_and_modes_follow_the_umask(
    tmp_path, digits_dir, capsys
):
    out = tmp_path / "run"
    old = os.umask(0o027)
    try:
        status, text, _ = run_cli(
            run_args(out, digits_dir, epochs=0, export=True), capsys
        )
    finally:
        os.umask(old)
    assert status == 0
    assert "warning: train.epochs=0: the model is untrained" in text
    assert "untrained" in read_json(out / "metrics.json")["warning"]
    modes = {}
    for root, folders, files in os.walk(out):
        for name in folders + files:
            info = os.lstat(os.path.join(root, name))
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
            modes.setdefault(kind, set()).add(stat.S_IMODE(info.st_mode))
    assert modes == {"dir": {0o750}, "file": {0o640}}
