"""Scaled token embedding plus sinusoidal positions (Vaswani et al. 2017)."""

import math

import keras
from keras import ops


def sinusoidal_positions(length, dim, start=0):
    """`[length, dim]` float32 sinusoids of positions `start ...`.

    Vaswani et al. 2017, §3.5: `PE(p, 2i) = sin(p / 10000^(2i/d))`,
    `PE(p, 2i+1) = cos(...)` (here the sines fill the first half of the
    channels and the cosines the second, as in the TF tutorial).
    """
    positions = ops.cast(ops.arange(length), "float32") + ops.cast(
        start, "float32"
    )
    half = dim // 2
    rates = ops.exp(
        -math.log(10000.0) * ops.cast(ops.arange(half), "float32") / half
    )
    angles = positions[:, None] * rates[None, :]
    encoding = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    if dim % 2:
        encoding = ops.pad(encoding, [[0, 0], [0, 1]])
    return encoding


@keras.saving.register_keras_serializable(package="attention_zoo")
class TokenPositionEmbedding(keras.layers.Layer):
    """`embedding(ids) * sqrt(dim) + sinusoid(position)`, masking id 0.

    The input layer of the Transformer (Vaswani et al. 2017, §3.4-3.5).
    `start_index` offsets the positions, so one decoding step at position
    `t` embeds its token exactly as the full sequence does.

    Args:
        vocab_size: number of token ids (0 = padding, masked).
        dim: embedding size `d_model`.
        **kwargs: base layer arguments.

    Call arguments:
        ids: int `[B, T]`.
        start_index: position of the first token (int or scalar tensor).

    Returns:
        `[B, T, dim]`, with the Keras mask `ids != 0`.
    """

    def __init__(self, vocab_size, dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.dim = dim
        self.embedding = keras.layers.Embedding(
            vocab_size, dim, dtype=self.dtype_policy, name="token_embedding"
        )
        self.supports_masking = True

    def build(self, ids_shape):
        self.embedding.build(ids_shape)

    def call(self, ids, start_index=0):
        x = self.embedding(ids) * ops.cast(
            math.sqrt(self.dim), self.compute_dtype
        )
        positions = sinusoidal_positions(
            ops.shape(ids)[1], self.dim, start_index
        )
        return x + ops.cast(positions[None], x.dtype)

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, 0)

    def compute_output_shape(self, ids_shape):
        return (*ids_shape, self.dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "dim": self.dim,
        }
