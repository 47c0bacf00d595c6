"""Atomic export: failures leave nothing; success replaces the target."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments.export import atomic_directory
from experiments.export import export_saved_model


def test_atomic_directory_failure_leaves_nothing(tmp_path):
    target = tmp_path / "saved_model"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(str(target)) as tmp:
            os.makedirs(tmp)
            (tmp_path / os.path.basename(tmp) / "half").write_text("x")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_directory_keeps_old_export_on_failure(tmp_path):
    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(str(target)) as tmp:
            os.makedirs(tmp)
            raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]
    assert (target / "old").read_text() == "old"


def test_atomic_directory_replaces(tmp_path):
    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old").write_text("old")
    with atomic_directory(str(target)) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "new"), "w") as f:
            f.write("new")
    assert os.listdir(target) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]


def test_export_failure_in_tracing_leaves_no_folder(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def serve(x):
        return {"y": model(x)}  # wrong width: fails while tracing

    with pytest.raises(Exception):  # noqa: B017  (Keras/TF error types vary)
        export_saved_model(str(tmp_path / "sm"), model, serve)
    assert os.listdir(tmp_path) == []


def test_export_round_trip(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def serve(x):
        return {"y": model(x)}

    path = export_saved_model(str(tmp_path / "sm"), model, serve)
    loaded = tf.saved_model.load(path)
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](x=tf.constant(x))["y"],
        model(x),
        rtol=1e-6,
    )
