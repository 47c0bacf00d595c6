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

    With `output_bias=True` the layer is also the output layer (Vaswani et
    al. 2017, §3.4; Press & Wolf 2017, "Using the Output Embedding to
    Improve Language Models"): `layer(hidden, reverse=True)` gives the
    logits `hidden @ embeddings^T + bias` over the vocabulary, so the
    embedding matrix is shared between input and output.

    Args:
        vocab_size: number of token ids (0 = padding, masked).
        dim: embedding size `d_model`.
        output_bias: make the bias of the tied output layer (needed for
            `reverse=True`).
        **kwargs: base layer arguments.

    Call arguments:
        ids: int `[B, T]`; with `reverse=True`, hidden states `[B, T, dim]`.
        start_index: position of the first token (int or scalar tensor).
        reverse: give the logits `[B, T, vocab_size]` of hidden states.

    Returns:
        `[B, T, dim]`, with the Keras mask `ids != 0` (`reverse=True`: the
        logits, with the hidden states' mask).

    Example:
    ```python
    import numpy as np
    from zoo.translation.token_position_embedding import (
        TokenPositionEmbedding)

    embed = TokenPositionEmbedding(10, 4, output_bias=True)
    x = embed(np.array([[3, 4, 0]], "int32"))
    assert x.shape == (1, 3, 4)
    assert embed(x, reverse=True).shape == (1, 3, 10)
    ```
    """

    def __init__(self, vocab_size, dim, output_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.dim = dim
        self.output_bias = output_bias
        self.embedding = keras.layers.Embedding(
            vocab_size, dim, dtype=self.dtype_policy, name="token_embedding"
        )
        self.supports_masking = True

    def build(self, ids_shape):
        self.embedding.build(ids_shape[:2])
        self.bias = None
        if self.output_bias:
            self.bias = self.add_weight(
                shape=(self.vocab_size,), initializer="zeros", name="bias"
            )

    def call(self, ids, start_index=0, reverse=False):
        if reverse:
            return self._logits(ids)
        x = self.embedding(ids) * ops.cast(
            math.sqrt(self.dim), self.compute_dtype
        )
        positions = sinusoidal_positions(
            ops.shape(ids)[1], self.dim, start_index
        )
        return x + ops.cast(positions[None], x.dtype)

    def _logits(self, hidden):
        if self.bias is None:
            raise ValueError(
                "`reverse=True` needs the output bias: build the layer "
                "with `output_bias=True`. Received: output_bias=False"
            )
        weights = ops.cast(self.embedding.embeddings, hidden.dtype)
        logits = ops.matmul(hidden, ops.transpose(weights))
        return logits + ops.cast(self.bias, hidden.dtype)

    # Ids are `[B, T]`; a rank-3 input is the hidden states of a
    # `reverse=True` call, which keep the mask they carry.
    def compute_mask(self, ids, mask=None):
        if len(ids.shape) == 3:
            return mask
        return ops.not_equal(ids, 0)

    def compute_output_shape(self, ids_shape):
        if len(ids_shape) == 3:
            return (*ids_shape[:-1], self.vocab_size)
        return (*ids_shape, self.dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "dim": self.dim,
            "output_bias": self.output_bias,
        }
