"""Serving limits: a configurable maximum batch, refused with "Bad
request" and the whole received shape (the cases of every task's export
are in tests/test_serving_robustness.py)."""

import numpy as np
import pytest
import tensorflow as tf

from experiments import export as export_lib


def _export_image_classifier(path):
    import zoo
    from experiments.tasks import get_task
    from experiments.tasks.base import TaskData

    model = zoo.build(
        "mixer_tiny",
        input_shape=(8, 8, 1),
        num_classes=3,
        patch_size=2,
        depth=1,
        embed_dim=8,
    )
    info = {"input_shape": [8, 8, 1], "label_names": ["a", "b", "c"]}
    data = TaskData(None, None, None, 1, info=info)
    get_task("image_classification").export(model, data, None, path)


def test_configured_maximum_batch(tmp_path):
    path = str(tmp_path / "saved_model")
    with export_lib.serving_limits(max_batch=2):
        _export_image_classifier(path)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(images=tf.zeros([2, 8, 8, 1], tf.uint8))
    np.testing.assert_allclose(np.sum(out["probabilities"], -1), 1.0, 1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        serve(images=tf.zeros([3, 8, 8, 1], tf.uint8))
    message = str(caught.value)
    assert "Bad request: a batch of at most 2 is served" in message
    assert "[3, 8, 8, 1]" in message


def test_default_maximum_by_input_kind():
    assert export_lib.max_batch_for(tf.string) == 4096
    assert export_lib.max_batch_for(tf.uint8) == 1024
    with export_lib.serving_limits(max_batch=7):
        assert export_lib.max_batch_for(tf.string) == 7
    assert export_lib.max_batch_for(tf.uint8) == 1024
    with pytest.raises(ValueError, match="Received: max_batch=-1"):
        with export_lib.serving_limits(max_batch=-1):
            pass
