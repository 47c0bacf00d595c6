"""Splits the batch axis into documents: `[B * S, ...]` -> `[B, S, ...]`."""

import keras
from keras import ops

from layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="attention_zoo")
class UnfoldSentences(keras.layers.Layer):
    """Inverse of `FoldSentences`: `[B * S, ...]` -> `[B, S, ...]`.

    Args:
        num_sentences: the sentence count `S` per document.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[B * S, ...]` with known trailing sizes.

    Returns:
        `[B, S, ...]`.

    Example:

    >>> x = keras.ops.zeros((6, 5))
    >>> tuple(UnfoldSentences(3)(x).shape)
    (2, 3, 5)
    """

    def __init__(self, num_sentences, **kwargs):
        super().__init__(**kwargs)
        self.num_sentences = check_positive_int("num_sentences", num_sentences)

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.num_sentences, *inputs.shape[1:]))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs):
        shape = inputs.shape
        batch = None if shape[0] is None else shape[0] // self.num_sentences
        return keras.KerasTensor(
            (batch, self.num_sentences, *shape[1:]), dtype=inputs.dtype
        )

    def get_config(self):
        return {**super().get_config(), "num_sentences": self.num_sentences}
