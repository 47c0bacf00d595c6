"""Shared three-stage machinery of score-based attention (Luong et al. 2015).

Score, normalise, weighted sum: `Attention`, `BahdanauAttention` and
`LuongAttention` subclass `ScoreAttentionBase` and differ only in how they
build their score layer and post-process the weights (Luong's local
windows). Luong, Pham & Manning 2015, "Effective Approaches to
Attention-based Neural Machine Translation".
"""

import keras
from keras import ops

from layers.masking import NORMALIZERS
from layers.masking import merge_attention_masks
from layers.masking import normalize_scores
from layers.validation import check_choice
from layers.validation import check_rate
from layers.validation import check_seed


def check_probability_fn(name, value):
    """Raises `ValueError` unless `value` names a known normaliser."""
    return check_choice(name, value, NORMALIZERS)


def _shape(shape):
    return tuple(None if d is None else int(d) for d in shape)


def _as_tensor(x):
    if x is None or hasattr(x, "shape"):
        return x
    return ops.convert_to_tensor(x)


def _sequence_shape(query_shape):
    """`[B, Dq]` (one decoder step) -> `[B, 1, Dq]`."""
    query_shape = _shape(query_shape)
    if len(query_shape) == 2:
        return (query_shape[0], 1, query_shape[1])
    return query_shape


class ScoreAttentionBase(keras.layers.Layer):
    """Base of the score-based sequence attention layers (not registered).

    Subclasses set `self.score_layer` (a `layers.Score`) in `__init__` and
    may override `_build_extra`, `_compute_logits` and `_compute_weights`.
    It implements the shared call convention, 2-D (one decoder step) and
    3-D queries, mask merging, dropout on the weights, precomputed keys,
    `compute_output_shape` and `compute_output_spec`.

    Args:
        normalizer: `"softmax"`, `"sparsemax"` or `"sigmoid"` (validated by
            the subclass under its own argument name).
        dropout: dropout rate on the attention weights, in `[0, 1)`.
        seed: optional int seed of the dropout.
        **kwargs: base layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, normalizer="softmax", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_probability_fn("normalize", normalizer)
        self.dropout = check_rate("dropout", dropout)
        self.seed = check_seed("seed", seed)
        self._normalizer = normalizer
        self.supports_masking = True
        self.score_layer = None
        self.dropout_layer = keras.layers.Dropout(
            rate=dropout,
            seed=seed,
            dtype=self.dtype_policy,
            name="attention_dropout",
        )

    # === Shapes ===

    def _check_shapes(
        self, query_shape, value_shape, key_shape, projected_key_shape=None
    ):
        q, v, k = _shape(query_shape), _shape(value_shape), _shape(key_shape)
        name = type(self).__name__
        received = f"Received: query.shape={q}, value.shape={v}, key.shape={k}"
        if len(q) not in (2, 3):
            raise ValueError(
                f"{name}: `query` must have rank 3 [batch, query_length, "
                f"query_dim] or rank 2 [batch, query_dim] (one decoder "
                f"step). {received}"
            )
        for arg, shape in (("value", v), ("key", k)):
            if len(shape) != 3:
                raise ValueError(
                    f"{name}: `{arg}` must have rank 3 [batch, key_length, "
                    f"{arg}_dim]. {received}"
                )
        batches = {d for d in (q[0], v[0], k[0]) if d is not None}
        if len(batches) > 1:
            raise ValueError(
                f"{name}: `query`, `value` and `key` must have the same "
                f"batch size. {received}"
            )
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ValueError(
                f"{name}: `key` and `value` must have the same length "
                f"(axis 1). {received}"
            )
        if projected_key_shape is not None:
            p = _shape(projected_key_shape)
            if (
                len(p) != 3
                or (None not in (p[0], v[0]) and p[0] != v[0])
                or (None not in (p[1], v[1]) and p[1] != v[1])
            ):
                raise ValueError(
                    f"{name}: `projected_key` must be the output of "
                    f"`project_key(key)`, of shape [batch, key_length, ...] "
                    f"matching `value`. Received: projected_key.shape={p}, "
                    f"value.shape={v}"
                )
        self.score_layer.check_shapes(_sequence_shape(q), k)

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        self._check_shapes(query_shape, value_shape, key_shape)
        query_shape = _sequence_shape(query_shape)
        key_shape = _shape(key_shape)
        if not self.score_layer.built:
            self.score_layer.build(query_shape, key_shape)
        self._build_extra(query_shape, key_shape)
        self.dropout_layer.build((query_shape[0], query_shape[1], key_shape[1]))

    def _build_extra(self, query_shape, key_shape):
        """Hook: creates the subclass' own weights (query is 3-D here)."""

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        self._check_shapes(query_shape, value_shape, key_shape)
        return (*tuple(query_shape)[:-1], tuple(value_shape)[-1])

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        use_causal_mask=False,
        training=None,
        projected_key=None,
        **kwargs,
    ):
        # Checks shapes and mask shapes (the causal mask has no shape to
        # check and needs concrete lengths).
        _, key, _, single = self._prepare(
            query,
            value,
            key,
            query_mask,
            value_mask,
            attention_mask,
            False,
            projected_key,
        )
        shape = self.compute_output_shape(query.shape, value.shape, key.shape)
        context = keras.KerasTensor(shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return context
        if single:
            weights_shape = (query.shape[0], key.shape[1])
        else:
            weights_shape = (query.shape[0], query.shape[1], key.shape[1])
        return context, keras.KerasTensor(weights_shape, dtype="float32")

    # === Attention ===

    def project_key(self, key):
        """Precomputes the key side of the score (the "memory") once.

        A decoder that attends over the same source sequence at every step
        calls `projected = layer.project_key(key)` once per sequence, then
        `layer(query_t, value, projected_key=projected, ...)` at each step,
        so the key projection (`W_k k` for additive scores, `k W_a^T` for
        `general`) is not recomputed. The layer must be built first (called
        once, or `layer.build(query_shape, value_shape)`).

        Args:
            key: `[B, Tk, Dk]` keys (the value when there are no keys).

        Returns:
            The projected keys `[B, Tk, ...]`, for `projected_key=`.
        """
        if not self.built:
            raise ValueError(
                f"{type(self).__name__} must be built before "
                "`project_key()`: call the layer once, or call "
                "`build(query_shape, value_shape)`."
            )
        key = _as_tensor(key)
        shape = _shape(key.shape)
        built = self.score_layer._key_dim
        if len(shape) != 3 or (
            None not in (built, shape[-1]) and shape[-1] != built
        ):
            raise ValueError(
                f"{type(self).__name__}.project_key: `key` must have shape "
                f"[batch, key_length, {built}]. Received: key.shape={shape}"
            )
        return self.score_layer.project_key(key)

    def _prepare(
        self,
        query,
        value,
        key,
        query_mask,
        value_mask,
        attention_mask,
        use_causal_mask,
        projected_key,
    ):
        """Checks shapes, lifts a 2-D query to 3-D, merges the masks."""
        key = value if key is None else key
        query_mask = _as_tensor(query_mask)
        value_mask = _as_tensor(value_mask)
        attention_mask = _as_tensor(attention_mask)
        self._check_shapes(
            query.shape,
            value.shape,
            key.shape,
            None if projected_key is None else projected_key.shape,
        )
        single = len(query.shape) == 2
        if single:
            query = ops.expand_dims(query, 1)  # [B, 1, Dq]
            if query_mask is not None and len(query_mask.shape) == 1:
                query_mask = ops.expand_dims(query_mask, 1)
            if attention_mask is not None and len(attention_mask.shape) == 2:
                attention_mask = ops.expand_dims(attention_mask, 1)
        mask = merge_attention_masks(
            query,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )
        return query, key, mask, single

    def _compute_logits(self, query, projected_key):
        """Hook: float32 logits `[B, Tq, Tk]`."""
        return self.score_layer.score_projected(query, projected_key)

    def _compute_weights(
        self, logits, query, mask, value_mask, query_position=None
    ):
        """Hook: float32 weights `[B, Tq, Tk]`, zero where `mask` is False."""
        return normalize_scores(logits, mask, normalize=self._normalizer)

    def _attend(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        use_causal_mask=False,
        training=None,
        projected_key=None,
        query_position=None,
    ):
        # query: [B, Tq, Dq] (or [B, Dq]); key: [B, Tk, Dk]; value: [B, Tk, Dv]
        query, key, mask, single = self._prepare(
            query,
            value,
            key,
            query_mask,
            value_mask,
            attention_mask,
            use_causal_mask,
            projected_key,
        )
        if projected_key is None:
            projected_key = self.score_layer.project_key(key)
        logits = self._compute_logits(query, projected_key)  # [B, Tq, Tk]
        weights = self._compute_weights(
            logits, query, mask, _as_tensor(value_mask), query_position
        )
        dropped = self.dropout_layer(weights, training=training)
        # [B, Tq, Tk] x [B, Tk, Dv] -> [B, Tq, Dv]
        context = ops.matmul(ops.cast(dropped, value.dtype), value)
        if single:
            context = ops.squeeze(context, 1)
            weights = ops.squeeze(weights, 1)
        if return_attention_scores:
            return context, weights
        return context

    def get_config(self):
        config = {"dropout": self.dropout, "seed": self.seed}
        return {**super().get_config(), **config}
