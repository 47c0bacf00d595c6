"""A loss that becomes NaN: training stops at once with one line (epoch,
step, last finite loss, hint), the last good checkpoint stays, nothing is
exported, and the run resumes from that checkpoint."""

import keras
import numpy as np
import pytest

from experiments import atomic
from experiments import runner
from experiments.errors import NonFiniteLossError
from tests.experiments.processes import TINY_MIXER
from tests.faults.conftest import error_line
from tests.faults.conftest import read_json
from tests.faults.conftest import run_args
from tests.faults.conftest import run_cli


class PoisonWeights(keras.callbacks.Callback):
    """Sets one weight to NaN when step `step` of epoch `epoch` begins."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at = (epoch, step)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch + 1) == self.at:
            weights = self.model.trainable_weights[0]
            weights.assign(np.full(weights.shape, np.nan, "float32"))


def test_nan_in_epoch_2_keeps_epoch_1(tmp_path, digits_dir, capsys):
    out = tmp_path / "run"
    config = runner.resolve(
        "digits_mixer_tiny",
        [*TINY_MIXER, "export=false", "train.run_eagerly=true"],
        epochs=2,
    )
    with pytest.raises(NonFiniteLossError) as caught:
        runner.run(
            config,
            out=str(out),
            data_dir=digits_dir,
            verbose=0,
            callbacks=[PoisonWeights(epoch=2, step=2)],
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "epoch 2, step 2" in message
    assert "last finite loss" in message and "epoch 2, step 1" in message
    assert "learning_rate" in message and str(out) in message
    record = read_json(out / "checkpoints" / "training_metadata.json")
    assert record["epoch"] == 1
    weights = out / "checkpoints" / record["weights"]
    assert atomic.sha256(weights) == record["sha256"]
    assert not (out / "saved_model").exists()
    assert not (out / "model.keras").exists()
    assert not (out / "metrics.json").exists()

    capsys.readouterr()
    metrics = runner.run(config, out=str(out), data_dir=digits_dir, verbose=0)
    assert metrics["resumed_from_epoch"] == 1
    assert np.isfinite(metrics["test_loss"])


def test_diverging_learning_rate_on_the_command_line(
    tmp_path, digits_dir, capsys
):
    out = tmp_path / "run"
    args = run_args(
        out, digits_dir, "train.learning_rate=1e12", export=True, eager=False
    )
    status, _, err = run_cli(args, capsys)
    assert status == 2
    line = error_line(err)
    assert "The training loss became nan at epoch 1" in line
    assert "no checkpoint was written yet" in line
    assert not (out / "saved_model").exists()
    # A sane learning rate needs a new folder (the config differs).
    status, _, _ = run_cli(run_args(tmp_path / "sane", digits_dir), capsys)
    assert status == 0
