"""The bad-input matrix of docs/reliability.md: layers and saved files.

Every row is one test: a bad input and the clear message it gets. The
command-line rows live in `tests/experiments/test_cli.py` (one test each),
the serving rows in `tests/test_serving_robustness.py`; the docs table
names the test of every row.
"""

import json
import os
import re

import keras
import numpy as np
import pytest

import layers
import zoo
from experiments import data as data_lib
from experiments import training
from experiments.errors import UserError

pytestmark = pytest.mark.tf_only


def _zeros(*shape):
    return np.zeros(shape, "float32")


# === Layers: bad arguments, wrong ranks, mismatched shapes ===

LAYER_ROWS = {
    "bad_argument_choice": (
        lambda: layers.LuongAttention(score="additive"),
        r"`score` must be one of \('dot', 'general', 'concat', 'location'\)"
        r"\. Received: score='additive'",
    ),
    "bad_argument_value": (
        lambda: layers.MultiHeadAttention(num_heads=0, key_dim=8),
        r"`num_heads` expected a positive integer\. Received: num_heads=0",
    ),
    "incompatible_arguments": (
        lambda: layers.MultiHeadAttention(
            num_heads=3, key_dim=4, num_key_value_heads=2
        ),
        r"`num_heads` must be a multiple of `num_key_value_heads`",
    ),
    "wrong_rank_image_block": (
        lambda: layers.SqueezeExcite()(_zeros(2, 8, 16)),
        r"SqueezeExcite expects images \[B, H, W, C\] \(a rank-4 tensor\)\. "
        r"Received: inputs.shape=\(2, 8, 16\)",
    ),
    "wrong_rank_sequence_layer": (
        lambda: layers.CBAM()(_zeros(2, 16)),
        r"CBAM expects images \[B, H, W, C\] \(a rank-4 tensor\)\. "
        r"Received: inputs.shape=\(2, 16\)",
    ),
    "mismatched_batch": (
        lambda: layers.LuongAttention()(_zeros(2, 3, 4), _zeros(1, 7, 5)),
        r"must have the same batch size\. Received: query.shape=\(2, 3, 4\), "
        r"value.shape=\(1, 7, 5\)",
    ),
    "mismatched_mask": (
        lambda: layers.BahdanauAttention(units=4)(
            _zeros(2, 3, 4),
            _zeros(2, 7, 4),
            value_mask=np.ones((2, 6), bool),
        ),
        r"`value_mask` has shape \(2, 6\), incompatible with the expected "
        r"shape \(2, 7\)",
    ),
}


@pytest.mark.parametrize("row", sorted(LAYER_ROWS))
def test_layer_row(row):
    make, message = LAYER_ROWS[row]
    with pytest.raises(ValueError, match=message):
        make()


# === Saved files: .keras models ===


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    model = zoo.build("resnet20", input_shape=(8, 8, 1), num_classes=3, depth=8)
    path = str(tmp_path_factory.mktemp("keras") / "model.keras")
    model.save(path)
    return path


def _variant(keras_file, tmp_path, name, change):
    with open(keras_file, "rb") as f:
        data = bytearray(f.read())
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(change(data))
    return path


def _flip_middle_byte(data):
    data[len(data) // 3] ^= 0xFF
    return bytes(data)


KERAS_ROWS = {
    "truncated_keras": (
        lambda data: bytes(data[: len(data) // 2]),
        ValueError,
        "it is not a zip archive. The file is truncated or corrupted",
    ),
    "corrupted_keras": (
        _flip_middle_byte,
        ValueError,
        "fails its checksum. The file is truncated or corrupted",
    ),
    "empty_keras": (lambda data: b"", ValueError, "the file is empty"),
}


@pytest.mark.parametrize("row", sorted(KERAS_ROWS))
def test_damaged_keras_file(row, keras_file, tmp_path):
    change, error, message = KERAS_ROWS[row]
    path = _variant(keras_file, tmp_path, f"{row}.keras", change)
    with pytest.raises(error, match=re.escape(message)):
        zoo.load_model(path)


def test_missing_keras_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file at"):
        zoo.load_model(str(tmp_path / "nothing.keras"))


def test_saved_model_folder_given_as_keras_file(tmp_path):
    with pytest.raises(ValueError, match="tf.saved_model.load"):
        zoo.load_model(str(tmp_path))


def test_intact_keras_file_loads_in_safe_mode(keras_file):
    model = zoo.load_model(keras_file)
    probs = np.asarray(model(np.zeros((1, 8, 8, 1), "uint8")))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_safe_mode_refuses_code_in_a_keras_file(tmp_path):
    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        zoo.load_model(path)


def test_no_project_code_turns_safe_mode_off():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    offenders = []
    for package in ("layers", "zoo", "experiments", "benchmarks", "tests"):
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                with open(path) as f:
                    text = f.read()
                if re.search(r"safe_mode\s*=\s*False", text) and name != (
                    os.path.basename(__file__)
                ):
                    offenders.append(path)
    assert offenders == []


# === Saved files: training checkpoints (resume) ===


def _checkpoints(folder, epochs):
    """A RunCheckpoint with commits of `epochs` (weights differ per epoch)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(_zeros(4, 2), _zeros(4, 1), epochs=1, verbose=0)
    checkpoint = training.RunCheckpoint(str(folder))
    checkpoint.set_model(model)
    for epoch in epochs:
        model.layers[0].kernel.assign(np.full((2, 1), epoch, "float32"))
        checkpoint._current_epoch = epoch
        checkpoint._save_model()
    return model, checkpoint


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_truncated_latest_checkpoint_falls_back_to_previous(tmp_path, capsys):
    model, checkpoint = _checkpoints(tmp_path, [1, 2])
    record = json.load(open(tmp_path / "training_metadata.json"))
    assert record["epoch"] == 2 and record["previous"]["epoch"] == 1
    _truncate(tmp_path / record["weights"])
    fresh = training.RunCheckpoint(str(tmp_path))
    assert fresh.resolve() == 1
    assert "Resuming from the previous checkpoint (epoch 1)" in (
        capsys.readouterr().out
    )
    fresh.restore(model)
    np.testing.assert_array_equal(np.asarray(model.layers[0].kernel), 1.0)


def test_truncated_checkpoints_give_a_clear_error(tmp_path):
    _, _ = _checkpoints(tmp_path, [1, 2])
    for name in os.listdir(tmp_path):
        if name.endswith(".weights.h5"):
            _truncate(tmp_path / name)
    with pytest.raises(
        training.CheckpointError,
        match=r"(?s)Cannot resume: checkpoint .*epoch-0002.weights.h5 is "
        r"damaged \(its SHA-256 differs.*Delete .* to restart the run from "
        r"scratch",
    ):
        training.RunCheckpoint(str(tmp_path)).resolve()


def test_garbled_checkpoint_record_gives_a_clear_error(tmp_path):
    _checkpoints(tmp_path, [1])
    (tmp_path / "training_metadata.json").write_text('{"epoch": ')
    with pytest.raises(
        training.CheckpointError, match="checkpoint record .* is unreadable"
    ):
        training.RunCheckpoint(str(tmp_path)).resolve()


def test_checkpoint_error_is_a_user_error():
    # The command line prints it without a traceback and exits with 2.
    assert issubclass(training.CheckpointError, UserError)


# === Training input that cannot be split ===


def _stream(num_examples, batch_size):
    import tensorflow as tf

    return data_lib.TrainStream(
        tf.data.Dataset.range(num_examples), num_examples, batch_size
    )


def test_fewer_examples_than_one_global_batch():
    with pytest.raises(UserError, match="fewer than one global batch"):
        _stream(20, 32).check()


def test_global_batch_not_divisible_by_replicas():
    with pytest.raises(UserError, match="must be divisible by the 4 replicas"):
        _stream(100, 10).check(4)
