"""Token loss and accuracy that ignore padding, for teacher-forced
sequence generators (translators, captioners)."""

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


def token_crossentropy(targets, logits, label_smoothing=0.0):
    """Cross-entropy of each position's target id, with a lean gradient.

    `-(1 - e) * log p[target] - e * mean(log p)` with `log p =
    log_softmax(logits)` and `e = label_smoothing` (Szegedy et al. 2016),
    per position. Values and gradients are those of the formula; the
    gradient, `(p - e / V) * upstream` with `(1 - e) * upstream` taken off
    at each target id, is written directly: three passes over the
    `[..., V]` logits and one scatter, where differentiating the formula
    step by step (the log-softmax, the gather's zero-filled scatter, the
    mean's broadcast and the sums of the three) takes about 1.6 times as
    long (benchmark `sequence_loss`). Over a large vocabulary the loss
    costs a translator's training step about as much as the output
    matmul before it.

    Args:
        targets: int `[...]` target ids.
        logits: float `[..., V]`.
        label_smoothing: `e` in `[0, 1)`.

    Returns:
        The loss of each position, `[...]`.

    Example:

    >>> import numpy as np
    >>> logits = np.log(np.array([[0.5, 0.25, 0.25]], "float32"))
    >>> losses = token_crossentropy(np.array([0]), logits)
    >>> round(float(losses[0]), 4)  # -log(0.5)
    0.6931
    """
    targets = ops.convert_to_tensor(targets, "int32")
    logits = ops.convert_to_tensor(logits)
    vocab = ops.shape(logits)[-1]
    # Flat [N, V] rows: the scatter below indexes them by (row, target).
    rows = ops.reshape(logits, (-1, vocab))
    flat_targets = ops.reshape(targets, (-1,))
    index = ops.stack(
        [ops.arange(ops.shape(flat_targets)[0], dtype="int32"), flat_targets],
        axis=1,
    )
    smoothing = float(label_smoothing)

    @ops.custom_gradient
    def crossentropy(rows):
        log_probs = ops.log_softmax(rows, axis=-1)
        losses = -ops.take_along_axis(log_probs, flat_targets[:, None], -1)
        losses = losses[:, 0]
        if smoothing:
            uniform = -ops.mean(log_probs, axis=-1)
            losses = (1.0 - smoothing) * losses + smoothing * uniform

        def grad(*args, upstream=None):
            if upstream is None:
                upstream = args[0]
            scale = upstream[:, None]
            dense = ops.exp(log_probs) * scale
            if smoothing:
                dense = dense - scale * (
                    smoothing / ops.cast(vocab, rows.dtype)
                )
            return ops.scatter_update(
                dense, index, -(1.0 - smoothing) * upstream, reduction="add"
            )

        return losses, grad

    return ops.reshape(crossentropy(rows), ops.shape(targets))


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
    Transformer with e = 0.1), computed by `token_crossentropy` without
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
        losses = token_crossentropy(
            y_true, ops.cast(y_pred, self.dtype), self.label_smoothing
        )
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
