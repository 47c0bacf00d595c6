"""Tests of the time-to-accuracy benchmark's parts (models, stopping)."""

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only


def test_keras_built_models_mirror_the_zoo_models(monkeypatch):
    import zoo
    from benchmarks.suite import keras_reference
    from layers import CBAM
    from zoo import registry

    # The reference models are registered in a copy of the registry, so
    # later tests in this process see only the library's own models.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    keras_reference.register()
    keras_reference.register()  # idempotent in one process
    small = {"input_shape": (8, 8, 1), "num_classes": 10}
    ours = zoo.build("cbam_resnet20", **small)
    theirs = zoo.build("keras_cbam_resnet20", **small)
    assert ours.count_params() == theirs.count_params()
    assert not any(isinstance(layer, CBAM) for layer in theirs.layers)
    assert theirs(np.zeros((2, 8, 8, 1), "uint8")).shape == (2, 10)
    vocabulary = ["good", "bad", "film"]
    ours = zoo.build("bigru_attention", vocabulary=vocabulary)
    theirs = zoo.build("keras_bigru_attention", vocabulary=vocabulary)
    assert ours.count_params() == theirs.count_params()
    probs = theirs(np.array(["good film", "bad"], dtype=object))
    np.testing.assert_allclose(np.sum(probs, axis=-1), [1.0, 1.0], rtol=1e-5)


def test_timer_stops_at_the_first_epoch_reaching_the_target():
    import keras

    from benchmarks.suite.time_to_accuracy import _timer_callback

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = keras.utils.to_categorical((x[:, 0] > 0).astype("int32"), 2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    timer = _timer_callback(target=0.0)
    model.fit(
        x, y, validation_data=(x, y), epochs=5, callbacks=[timer], verbose=0
    )
    assert len(timer.epochs) == 1 and timer.reached["epoch"] == 1
    assert timer.reached["wall_s"] > 0 and timer.reached["cpu_s"] > 0
    timer = _timer_callback(target=1.1)  # never reached: all epochs run
    model.fit(
        x, y, validation_data=(x, y), epochs=3, callbacks=[timer], verbose=0
    )
    assert timer.reached is None and len(timer.epochs) == 3
