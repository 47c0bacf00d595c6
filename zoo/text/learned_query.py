"""A learned query vector for attention pooling (Yang et al. 2016)."""

import keras
from keras import ops

from layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="attention_zoo")
class LearnedQuery(keras.layers.Layer):
    """A trained vector, repeated for every example: the query of attention
    pooling with any sequence attention layer.

    Hierarchical attention networks score every word against a learned
    "context vector" `u_w` (Yang et al. 2016, "Hierarchical Attention
    Networks for Document Classification"). `AttentionPooling1D` has that
    vector built in; this layer provides it to the other attention layers
    (`LuongAttention`, `BahdanauAttention`, `HardAttention`, ...), which
    take it as a one-step query `[B, units]`, so score functions can be
    compared on the same pooling task.

    Args:
        units: size of the query vector.
        initializer: initializer of the vector.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: any tensor whose first axis is the batch (e.g. the sequence
            the query will attend over).

    Returns:
        `[B, units]`: the same vector for every example.

    Example:

    >>> from layers import LuongAttention
    >>> h = keras.random.normal((2, 7, 16))
    >>> query = LearnedQuery(16)(h)
    >>> context, weights = LuongAttention("dot")(
    ...     query, h, return_attention_scores=True)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 16), (2, 7))
    """

    def __init__(self, units, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        # Stored as [1, units] so fan-based initializers see a matrix.
        self.query = self.add_weight(
            name="query", shape=(1, self.units), initializer=self.initializer
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        query = ops.cast(self.query, self.compute_dtype)
        return ops.broadcast_to(query, (batch, self.units))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = {
            "units": self.units,
            "initializer": keras.initializers.serialize(self.initializer),
        }
        return {**super().get_config(), **config}
