"""The pre-LayerNorm Transformer encoder block (Vaswani et al. 2017) as
functional code, shared by the Vision Transformer and the text classifier."""

import keras

from layers import MultiHeadAttention


def encoder_block(
    x,
    mask=None,
    *,
    num_heads,
    ff_dim,
    dropout,
    attention_dropout,
    name,
    ff_name="ff",
    return_attention_scores=False,
):
    """One pre-LayerNorm Transformer encoder block over `[B, T, D]`.

    Self-attention then a GELU feed-forward network, each on a LayerNorm of
    its input and added back to it. `mask` `[B, T]` (True = token), when
    given, is passed as both query and value mask, so padding is never
    attended and padded positions output zeros from the attention.

    Args:
        x: tokens `[B, T, D]`, `D` divisible by `num_heads`.
        mask: optional boolean `[B, T]`.
        num_heads: attention heads.
        ff_dim: hidden width of the feed-forward network.
        dropout: dropout on the residual branches.
        attention_dropout: dropout on the attention weights.
        name: prefix of the block's layer names.
        ff_name: middle of the feed-forward layers' names
            (`{name}_{ff_name}1`, `{name}_{ff_name}2`), so each model keeps
            the layer names its saved weights use.
        return_attention_scores: also return the `[B, heads, T, T]` weights.

    Returns:
        `x` `[B, T, D]` (and the attention weights).

    Example:
    >>> x = keras.Input((5, 8))
    >>> tuple(encoder_block(x, num_heads=2, ff_dim=16, dropout=0.0,
    ...                     attention_dropout=0.0, name="block1").shape)
    (None, 5, 8)
    """
    dim = x.shape[-1]
    masks = {} if mask is None else {"query_mask": mask, "value_mask": mask}
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    # y: [B, T, D]; scores: [B, heads, T, T]
    y, scores = MultiHeadAttention(
        num_heads=num_heads,
        key_dim=dim // num_heads,
        dropout=attention_dropout,
        name=f"{name}_attention",
    )(y, y, **masks, return_attention_scores=True)
    y = keras.layers.Dropout(dropout, name=f"{name}_drop1")(y)
    x = keras.layers.Add(name=f"{name}_add1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    y = keras.layers.Dense(
        ff_dim, activation="gelu", name=f"{name}_{ff_name}1"
    )(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_drop2")(y)
    y = keras.layers.Dense(dim, name=f"{name}_{ff_name}2")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_drop3")(y)
    x = keras.layers.Add(name=f"{name}_add2")([x, y])
    return (x, scores) if return_attention_scores else x
