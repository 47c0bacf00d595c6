"""Merges the document and sentence axes, `[B, S, ...]` -> `[B * S, ...]`."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="attention_zoo")
class FoldSentences(keras.layers.Layer):
    """Folds the sentence axis into the batch: `[B, S, ...]` -> `[B*S, ...]`.

    Lets the word-level encoder of a hierarchical attention network (Yang
    et al. 2016) run on every sentence of every document as one batch;
    `UnfoldSentences(S)` restores `[B, S, ...]`. Works on any dtype
    (including the strings of `SentenceSplit`).

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[B, S, ...]` with known `S` and trailing sizes.

    Returns:
        `[B * S, ...]`.

    Example:

    >>> x = keras.ops.zeros((2, 3, 5))
    >>> tuple(FoldSentences()(x).shape)
    (6, 5)
    """

    def call(self, inputs):
        if len(inputs.shape) < 2:
            raise ValueError(
                "`FoldSentences` expects [batch, sentences, ...]. Received: "
                f"inputs.shape={tuple(inputs.shape)}"
            )
        return ops.reshape(inputs, (-1, *inputs.shape[2:]))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs):
        shape = inputs.shape
        batch = None if None in shape[:2] else shape[0] * shape[1]
        return keras.KerasTensor((batch, *shape[2:]), dtype=inputs.dtype)
