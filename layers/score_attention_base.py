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
    It implements the one `call` of the score layers: the shared call
    convention, 2-D (one decoder step), 3-D and N-D queries (extra leading
    batch axes, as `keras.layers.Attention`), mask merging, dropout on the
    weights, precomputed keys, `compute_output_shape` and
    `compute_output_spec`.

    Args:
        probability_fn: the normaliser, `"softmax"`, `"sparsemax"` or
            `"sigmoid"`.
        dropout: dropout rate on the attention weights, in `[0, 1)`.
        seed: optional int seed of the dropout.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]`, one decoder state `[B, Dq]`, or `[*batch, Tq,
            Dq]` with extra leading batch axes (then `value` and `key`
            share them).
        value: `[B, Tk, Dv]` (`[*batch, Tk, Dv]`).
        key: optional `[B, Tk, Dk]`; defaults to `value`.
        query_mask: optional boolean `[B, Tq]` (`[B]` for a 2-D query).
        value_mask: optional boolean `[B, Tk]`, `True` = may attend. Filled
            automatically from the value's Keras mask.
        attention_mask: optional boolean `[B, Tq, Tk]` (`[B, Tk]` for a 2-D
            query).
        return_attention_scores: also return the weights.
        use_causal_mask: query `i` only attends keys
            `j <= query_position + i`.
        training: whether dropout is active.
        projected_key: optional output of `project_key(key)`.
        query_position: position of the first query on the key axis (int,
            or int tensor `[B]`); default 0. Offsets the causal mask (pass
            the step when decoding one state at a time); Luong's local-m
            window is centred there too.
    """

    def __init__(
        self, probability_fn="softmax", dropout=0.0, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.probability_fn = check_choice(
            "probability_fn", probability_fn, NORMALIZERS
        )
        self.dropout = check_rate("dropout", dropout)
        self.seed = check_seed("seed", seed)
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
        if len(v) > 3 or len(k) > 3:
            # Extra leading batch axes: checked here, then flattened.
            if not len(q) == len(v) == len(k) or any(
                None not in (a, b) and a != b
                for shape in (v, k)
                for a, b in zip(q[:-2], shape[:-2])
            ):
                raise ValueError(
                    f"{name}: `query`, `value` and `key` with extra batch "
                    "axes must have the same rank and the same batch axes "
                    f"(all but the last two). {received}"
                )
            q, v, k = ((None, *shape[-2:]) for shape in (q, v, k))
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
        if len(value_shape) > 3:  # extra batch axes, flattened in `call`
            query_shape = (None, *tuple(query_shape)[-2:])
            key_shape = (None, *tuple(key_shape)[-2:])
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
        query_position=None,
    ):
        key = value if key is None else key
        if len(value.shape) <= 3:
            # Checks shapes and mask shapes (the causal mask has no shape to
            # check and needs concrete lengths).
            self._prepare(
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
        # [*batch, Tq, Tk], or [B, Tk] for a 2-D query.
        weights_shape = (*tuple(query.shape)[:-1], key.shape[-2])
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
        query_position=None,
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
        offset_causal = use_causal_mask and query_position is not None
        mask = merge_attention_masks(
            query,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask and not offset_causal,
        )
        if offset_causal:
            # Query i sits at query_position + i (one offset per example).
            rows = ops.reshape(ops.arange(ops.shape(query)[1]), (1, -1, 1))
            offset = ops.reshape(
                ops.cast(query_position, rows.dtype), (-1, 1, 1)
            )
            cols = ops.reshape(ops.arange(ops.shape(key)[1]), (1, 1, -1))
            causal = ops.greater_equal(rows + offset, cols)
            mask = causal if mask is None else ops.logical_and(mask, causal)
        return query, key, mask, single

    def _compute_logits(self, query, projected_key, key):
        """Hook: float32 logits `[B, Tq, Tk]` (`projected_key` None: the
        score of `key`, on whichever side the score finds cheaper)."""
        if projected_key is None:
            return self.score_layer.score(query, key)
        return self.score_layer.score_projected(query, projected_key)

    def _compute_weights(
        self, logits, query, mask, value_mask, query_position=None
    ):
        """Hook: float32 weights `[B, Tq, Tk]`, zero where `mask` is False."""
        return normalize_scores(logits, mask, self.probability_fn)

    def call(
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
        if len(value.shape) > 3:
            return self._call_batch_axes(
                query,
                value,
                key,
                query_mask=query_mask,
                value_mask=value_mask,
                attention_mask=attention_mask,
                return_attention_scores=return_attention_scores,
                use_causal_mask=use_causal_mask,
                training=training,
                projected_key=projected_key,
                query_position=query_position,
            )
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
            query_position,
        )
        logits = self._compute_logits(query, projected_key, key)  # [B, Tq, Tk]
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

    def _call_batch_axes(self, query, value, key, **kwargs):
        """`call` on `[*batch, T, D]` inputs: the leading axes are flattened
        into one batch axis (masks alike) and restored afterwards."""
        key = value if key is None else key
        self._check_shapes(query.shape, value.shape, key.shape)
        lead = ops.shape(query)[:-2]

        def flat(x, trailing):
            if x is None:
                return None
            x = ops.convert_to_tensor(x)
            return ops.reshape(
                x, (-1, *ops.shape(x)[len(x.shape) - trailing :])
            )

        for name, trailing in (
            ("query_mask", 1),
            ("value_mask", 1),
            ("attention_mask", 2),
            ("projected_key", 2),
        ):
            kwargs[name] = flat(kwargs[name], trailing)
        outputs = self.call(
            flat(query, 2), flat(value, 2), flat(key, 2), **kwargs
        )

        def restore(x):
            return ops.reshape(x, (*lead, *ops.shape(x)[1:]))

        if kwargs["return_attention_scores"]:
            return tuple(restore(x) for x in outputs)
        return restore(outputs)

    def get_config(self):
        config = {
            "probability_fn": self.probability_fn,
            "dropout": self.dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
