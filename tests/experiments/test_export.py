"""Export: a failure leaves nothing; the export serves without the project.

The atomic folder replacement itself is tested in tests/faults/."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments.export import export_saved_model


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
