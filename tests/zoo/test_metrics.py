"""The padding-aware loss and accuracy of the sequence generators."""

import keras
import numpy as np
import pytest

from zoo.metrics import MaskedAccuracy
from zoo.metrics import MaskedSparseCrossentropy
from zoo.metrics import token_crossentropy


def _batch(seed=0, vocabulary=50):
    rng = np.random.default_rng(seed)
    targets = rng.integers(1, vocabulary, (4, 9))
    targets[:, 6:] = 0
    targets[0, 2:] = 0
    logits = 3 * rng.normal(size=(4, 9, vocabulary)).astype("float32")
    return targets, logits


def test_without_smoothing_equals_keras_ignore_class():
    targets, logits = _batch()
    keras_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0
    )
    np.testing.assert_allclose(
        MaskedSparseCrossentropy()(targets, logits),
        keras_loss(targets, logits),
        rtol=1e-6,
    )


def test_smoothing_equals_keras_on_one_hot_targets_of_the_valid_positions():
    targets, logits = _batch(1)
    per_position = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, reduction=None
    )(keras.ops.one_hot(targets, logits.shape[-1]), logits)
    expected = np.asarray(per_position)[targets != 0].mean()
    got = MaskedSparseCrossentropy(label_smoothing=0.1)(targets, logits)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Smoothing changes the loss (it is not ignored).
    assert (
        abs(float(got) - float(MaskedSparseCrossentropy()(targets, logits)))
        > 1e-3
    )


@pytest.mark.tf_only
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_token_crossentropy_gradient_is_the_formulas(smoothing):
    import tensorflow as tf

    targets, logits = _batch(4)
    logits = tf.constant(logits)
    weights = np.random.default_rng(5).normal(size=targets.shape)
    one_hot = keras.ops.one_hot(targets, logits.shape[-1])
    reference = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=smoothing, reduction=None
    )
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = token_crossentropy(targets, logits, smoothing)
        theirs = reference(one_hot, logits)
        ours_total = tf.reduce_sum(ours * weights)
        theirs_total = tf.reduce_sum(theirs * weights)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(ours_total, logits),
        tape.gradient(theirs_total, logits),
        atol=1e-6,
    )


def test_padding_does_not_count():
    targets, logits = _batch(2)
    changed = logits.copy()
    changed[targets == 0] = 100.0 * np.random.default_rng(3).normal(
        size=changed[targets == 0].shape
    )
    loss = MaskedSparseCrossentropy(label_smoothing=0.2)
    np.testing.assert_allclose(loss(targets, logits), loss(targets, changed))


def test_loss_serialises_and_rejects_bad_smoothing():
    loss = MaskedSparseCrossentropy(label_smoothing=0.1, pad_id=3)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, MaskedSparseCrossentropy)
    assert (clone.label_smoothing, clone.pad_id) == (0.1, 3)
    with pytest.raises(ValueError, match=r"label_smoothing=1\.0"):
        MaskedSparseCrossentropy(label_smoothing=1.0)


def test_accuracy_counts_only_valid_positions():
    targets = np.array([[4, 2, 0, 0]])
    logits = keras.ops.one_hot(np.array([[4, 3, 1, 1]]), 6)
    metric = MaskedAccuracy()
    metric.update_state(targets, logits)
    assert float(metric.result()) == pytest.approx(0.5)
