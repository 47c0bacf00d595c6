"""Token accuracy that ignores padding, for teacher-forced sequence
generators (translators, captioners)."""

import keras
from keras import ops

from zoo.tokens import PAD_ID


@keras.saving.register_keras_serializable(package="attention_zoo")
class MaskedAccuracy(keras.metrics.Metric):
    """Accuracy of the argmax token over the non-padding target positions.

    Args:
        pad_id: target id that marks padding (ignored).
        name: metric name.
        dtype: metric dtype.
    """

    def __init__(self, pad_id=PAD_ID, name="masked_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = pad_id
        self.correct = self.add_variable(
            (), initializer="zeros", name="correct"
        )
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        valid = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        if sample_weight is not None:
            valid = valid * ops.cast(sample_weight, "float32")
        hits = ops.cast(ops.equal(predicted, y_true), "float32") * valid
        self.correct.assign_add(ops.sum(hits))
        self.total.assign_add(ops.sum(valid))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def get_config(self):
        return {"pad_id": self.pad_id, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="attention_zoo")
class MaskedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer targets against logits, averaged over the
    non-padding positions, with optional label smoothing.

    With `label_smoothing=0` it equals `keras.losses.
    SparseCategoricalCrossentropy(from_logits=True, ignore_class=pad_id)`.
    With `label_smoothing=e` the target distribution is `(1 - e)` on the
    reference token plus `e / num_classes` on every token, as Keras's
    `CategoricalCrossentropy(label_smoothing=e)` smooths one-hot targets
    (Szegedy et al. 2016, "Rethinking the Inception Architecture",
    https://arxiv.org/abs/1512.00567; Vaswani et al. 2017 train their
    Transformer with e = 0.1), computed from the log-probabilities without
    building the one-hot targets (`[batch, length, vocabulary]` floats).

    Args:
        label_smoothing: `e` in `[0, 1)`.
        pad_id: target id that marks padding (ignored).
        name: loss name.
        reduction: Keras loss reduction; the default averages over the
            non-padding positions.
        dtype: loss dtype.

    Example:

    >>> import numpy as np
    >>> loss = MaskedSparseCrossentropy(label_smoothing=0.1)
    >>> targets = np.array([[5, 7, 0]])  # the last position is padding
    >>> logits = np.zeros((1, 3, 10), "float32")
    >>> round(float(loss(targets, logits)), 4)  # log(10): uniform logits
    2.3026
    """

    def __init__(
        self,
        label_smoothing=0.0,
        pad_id=PAD_ID,
        name="masked_sparse_crossentropy",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        if not 0 <= label_smoothing < 1:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). Received: "
                f"label_smoothing={label_smoothing}"
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)
        self.pad_id = pad_id

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The padding is read from `y_true` below. Keras would also apply
        # a mask the logits carry (a decoder's embedding propagates one,
        # on the same positions) and so divide by the valid count twice;
        # the logits go in without it.
        return super().__call__(
            y_true, ops.copy(y_pred), sample_weight=sample_weight
        )

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, self.dtype), axis=-1)
        losses = -ops.squeeze(
            ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), -1),
            -1,
        )
        if self.label_smoothing:
            uniform = -ops.mean(log_probs, axis=-1)
            losses = (
                1.0 - self.label_smoothing
            ) * losses + self.label_smoothing * uniform
        # Padding weighs 0 and every other position total / valid, so the
        # reduction's mean over all positions is the mean over the valid
        # ones (what Keras does with `ignore_class`).
        valid = ops.cast(ops.not_equal(y_true, self.pad_id), losses.dtype)
        total = ops.cast(ops.size(valid), losses.dtype)
        return losses * valid * ops.divide_no_nan(total, ops.sum(valid))

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "pad_id": self.pad_id,
        }
