"""Shared masking and normalisation primitives for every attention layer.

One mask convention for the whole project: boolean tensors, `True` = may
attend. Every layer merges its masks with `merge_attention_masks` and
normalises scores with `masked_softmax` (or `masked_sparsemax`,
`masked_sigmoid`), so the "all keys masked gives zero weights, never NaN"
guarantee and the float32 softmax under mixed precision live in one place.

References:
    Martins & Astudillo 2016, "From Softmax to Sparsemax: A Sparse Model of
    Attention and Multi-Label Classification" (sparsemax).
"""

import dataclasses

from keras import ops

NORMALIZERS = ("softmax", "sparsemax", "sigmoid")


def _static_dim(shape, axis):
    try:
        dim = shape[axis]
    except IndexError:
        return None
    return None if dim is None else int(dim)


def check_mask_shape(name, mask, expected, received_from):
    """Raises `ValueError` if `mask`'s static shape contradicts `expected`.

    `expected` is a tuple of ints/None (None = unknown, not checked).
    """
    shape = tuple(mask.shape)
    if len(shape) != len(expected):
        raise ValueError(
            f"`{name}` must have rank {len(expected)} "
            f"(expected shape {expected} from {received_from}). "
            f"Received: {name}.shape={shape}"
        )
    for got, want in zip(shape, expected):
        if got is not None and want is not None and got != want:
            # Allow broadcasting of a size-1 dimension.
            if got == 1:
                continue
            raise ValueError(
                f"`{name}` has shape {shape}, incompatible with the expected "
                f"shape {expected} from {received_from}. "
                f"Received: {name}.shape={shape}"
            )


def causal_mask(query_length, key_length, offset=0):
    """Returns a boolean `[1, Tq, Tk]` lower-triangular (causal) mask.

    Query position `i` may attend key position `j` when
    `j <= i + offset`. With a decoding cache of `offset` past keys, the new
    queries sit at positions `offset ... offset + Tq - 1` of the key axis.

    Args:
        query_length: number of queries `Tq` (int or scalar tensor).
        key_length: number of keys `Tk` (int or scalar tensor).
        offset: position of the first query on the key axis.

    Returns:
        Boolean tensor of shape `[1, Tq, Tk]`.
    """
    rows = ops.expand_dims(ops.arange(query_length), -1) + offset
    cols = ops.expand_dims(ops.arange(key_length), 0)
    return ops.expand_dims(ops.greater_equal(rows, cols), 0)


def sliding_window_mask(query_length, key_length, window, offset=0):
    """Boolean `[1, Tq, Tk]` band: query `i` sees key `j` iff
    `|i + offset - j| < window` (as Keras's `sliding_window`; combined with
    a causal mask it is the causal sliding window of Mistral-style models).

    Example:

    >>> import numpy as np
    >>> np.asarray(sliding_window_mask(3, 3, window=2)[0]).astype(int)
    array([[1, 1, 0],
           [1, 1, 1],
           [0, 1, 1]])
    """
    rows = ops.expand_dims(ops.arange(query_length), -1) + offset
    cols = ops.expand_dims(ops.arange(key_length), 0)
    return ops.expand_dims(ops.less(ops.abs(rows - cols), window), 0)


def merge_attention_masks(
    query,
    key,
    query_mask=None,
    value_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    causal_offset=0,
):
    """Merges every mask source into one boolean `[B, Tq, Tk]` mask.

    Masks are boolean, `True` = may attend. Shapes are checked against the
    query `[B, Tq, ...]` and key `[B, Tk, ...]` tensors; a mismatch raises a
    `ValueError` naming both shapes.

    Args:
        query: query tensor `[B, Tq, ...]`.
        key: key tensor `[B, Tk, ...]`.
        query_mask: optional `[B, Tq]` mask of valid queries. Rows of
            masked queries get no keys (zero weights, zero context).
        value_mask: optional `[B, Tk]` mask of valid keys/values.
        attention_mask: optional `[B, Tq, Tk]` mask (size-1 dimensions
            broadcast).
        use_causal_mask: whether to add a causal (lower-triangular) mask.
        causal_offset: number of keys before the first query (decoding
            cache length) for the causal mask.

    Returns:
        A boolean tensor broadcastable to `[B, Tq, Tk]`, or `None` when there
        is no mask at all.
    """
    q_shape, k_shape = tuple(query.shape), tuple(key.shape)
    batch = _static_dim(q_shape, 0)
    tq, tk = _static_dim(q_shape, 1), _static_dim(k_shape, 1)
    src = f"query.shape={q_shape} and key.shape={k_shape}"
    mask = None
    if query_mask is not None:
        check_mask_shape("query_mask", query_mask, (batch, tq), src)
        mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
    if value_mask is not None:
        check_mask_shape("value_mask", value_mask, (batch, tk), src)
        vm = ops.expand_dims(ops.cast(value_mask, "bool"), -2)
        mask = vm if mask is None else ops.logical_and(mask, vm)
    if attention_mask is not None:
        check_mask_shape("attention_mask", attention_mask, (batch, tq, tk), src)
        am = ops.cast(attention_mask, "bool")
        mask = am if mask is None else ops.logical_and(mask, am)
    if use_causal_mask:
        cm = causal_mask(ops.shape(query)[1], ops.shape(key)[1], causal_offset)
        mask = cm if mask is None else ops.logical_and(mask, cm)
    return mask


@dataclasses.dataclass(frozen=True)
class AttentionMasks:
    """Every mask source of one attention call, passed around as one value.

    Masks are boolean, `True` = may attend, in the layout of the (flattened)
    3-D problem: `T` queries, `S` keys.

    Attributes:
        query_mask: optional `[B, T]` mask of valid queries.
        value_mask: optional `[B, S]` mask of valid keys/values.
        attention_mask: optional mask broadcastable to `[B, T, S]`, or a
            per-head mask broadcastable to `[B, N, T, S]`.
        use_causal_mask: whether query `i` may only see keys
            `j <= i + causal_offset`.
        causal_offset: position of the first query on the key axis (int or
            scalar tensor), e.g. the number of keys already in a cache.
        key_slots: optional `[1, S]` mask of usable decoding-cache slots.
        sliding_window: optional int `W`: query `i` only sees keys with
            `|i + causal_offset - j| < W`.
    """

    query_mask: object = None
    value_mask: object = None
    attention_mask: object = None
    use_causal_mask: bool = False
    causal_offset: object = 0
    key_slots: object = None
    sliding_window: object = None

    @property
    def has_padding(self):
        """Whether a mask that can leave a query without keys is given (a
        query, value or attention mask, or a sliding window)."""
        return self.sliding_window is not None or any(
            m is not None
            for m in (self.query_mask, self.value_mask, self.attention_mask)
        )

    @property
    def per_head(self):
        """Whether the attention mask has a head axis (`[B, N, T, S]`)."""
        return (
            self.attention_mask is not None
            and len(self.attention_mask.shape) == 4
        )

    @property
    def causal_only(self):
        """Whether the causal mask is the only mask (a backend fast path)."""
        return (
            self.use_causal_mask
            and not self.has_padding
            and self.key_slots is None
        )

    def check_shapes(self, query, key):
        """Raises `ValueError` unless the masks fit `query [B, T, ...]` and
        `key [B, S, ...]`."""
        q_shape, k_shape = tuple(query.shape), tuple(key.shape)
        src = f"query.shape={q_shape} and key.shape={k_shape}"
        batch, tq, tk = q_shape[0], q_shape[1], k_shape[1]
        expected_attention = (
            (batch, None, tq, tk) if self.per_head else (batch, tq, tk)
        )
        for name, mask, expected in (
            ("query_mask", self.query_mask, (batch, tq)),
            ("value_mask", self.value_mask, (batch, tk)),
            ("attention_mask", self.attention_mask, expected_attention),
        ):
            if mask is not None:
                check_mask_shape(name, mask, expected, src)

    def value_mask_with_slots(self):
        """The `[B, S]` (or `[1, S]`) key mask including the cache slots."""
        if self.key_slots is None:
            return self.value_mask
        if self.value_mask is None:
            return self.key_slots
        return ops.logical_and(
            ops.cast(self.value_mask, "bool"), self.key_slots
        )

    def band_attention_mask(self, query, key):
        """The attention mask with the sliding window folded in."""
        if self.sliding_window is None:
            return self.attention_mask
        band = sliding_window_mask(
            ops.shape(query)[1],
            ops.shape(key)[1],
            self.sliding_window,
            self.causal_offset,
        )
        if self.attention_mask is None:
            return band
        return ops.logical_and(ops.cast(self.attention_mask, "bool"), band)

    def merged(self, query, key):
        """All masks as one boolean tensor broadcastable to `[B, T, S]`
        (`[B, N, T, S]` with a per-head mask), or `None` when there is no
        mask (see `merge_attention_masks`)."""
        if self.per_head:
            self.check_shapes(query, key)
            heads = ops.cast(self.attention_mask, "bool")
            rest = dataclasses.replace(self, attention_mask=None)
            rest = rest.merged(query, key)
            if rest is None:
                return heads
            return ops.logical_and(ops.expand_dims(rest, 1), heads)
        attention_mask = self.band_attention_mask(query, key)
        if self.key_slots is not None:
            slots = ops.expand_dims(self.key_slots, 1)  # [1, 1, S]
            attention_mask = (
                slots
                if attention_mask is None
                else ops.logical_and(ops.cast(attention_mask, "bool"), slots)
            )
        return merge_attention_masks(
            query,
            key,
            query_mask=self.query_mask,
            value_mask=self.value_mask,
            attention_mask=attention_mask,
            use_causal_mask=self.use_causal_mask,
            causal_offset=self.causal_offset,
        )


def valid_query_rows(mask):
    """Which queries have at least one key under a merged mask.

    `mask` is broadcastable to `[B, T, S]` or (per head) `[B, N, T, S]`;
    returns a boolean `[B, T]` (a query counts when any head sees a key).
    """
    rows = ops.any(mask, axis=-1)
    if len(mask.shape) == 4:
        rows = ops.any(rows, axis=1)
    return rows


def _as_float32(scores):
    return ops.cast(scores, "float32")


def masked_softmax(scores, mask=None, axis=-1):
    """Softmax over `axis` restricted to positions where `mask` is `True`.

    Computed in float32 whatever the input dtype (mixed precision safe).
    Masked positions get exactly zero weight; a row whose positions are all
    masked gets all-zero weights (never NaN), and its gradient is zero.

    Args:
        scores: logits tensor.
        mask: optional boolean tensor broadcastable to `scores`.
        axis: the axis to normalise over.

    Returns:
        float32 tensor of the shape of `scores`.
    """
    scores = _as_float32(scores)
    if mask is None:
        return ops.softmax(scores, axis=axis)
    mask = ops.cast(mask, "bool")
    neg = ops.full_like(scores, -3.0e38)
    masked = ops.where(mask, scores, neg)
    shifted = masked - ops.stop_gradient(
        ops.max(masked, axis=axis, keepdims=True)
    )
    exp = ops.exp(shifted) * ops.cast(mask, "float32")
    total = ops.sum(exp, axis=axis, keepdims=True)
    return exp / ops.maximum(total, 1e-30)


def masked_sigmoid(scores, mask=None):
    """Element-wise sigmoid gate with masked positions set to zero (float32).

    Args:
        scores: logits tensor.
        mask: optional boolean tensor broadcastable to `scores`.

    Returns:
        float32 tensor of the shape of `scores`, in `[0, 1]`.
    """
    weights = ops.sigmoid(_as_float32(scores))
    if mask is None:
        return weights
    return weights * ops.cast(mask, "float32")


def masked_sparsemax(scores, mask=None, axis=-1):
    """Sparsemax (Martins & Astudillo 2016) restricted to unmasked positions.

    The Euclidean projection of the scores onto the probability simplex:
    weights sum to one like softmax's, but low-scoring keys get exactly zero.
    Computed in float32. A row whose positions are all masked gets all-zero
    weights.

    Args:
        scores: logits tensor.
        mask: optional boolean tensor broadcastable to `scores`.
        axis: the axis to normalise over.

    Returns:
        float32 tensor of the shape of `scores`.
    """
    scores = _as_float32(scores)
    rank = len(scores.shape)
    axis = axis % rank
    if axis != rank - 1:
        scores = ops.moveaxis(scores, axis, -1)
        if mask is not None:
            mask = ops.moveaxis(
                ops.broadcast_to(ops.cast(mask, "bool"), ops.shape(scores)),
                axis,
                -1,
            )
    if mask is not None:
        mask = ops.broadcast_to(ops.cast(mask, "bool"), ops.shape(scores))
        # A large finite negative keeps masked keys outside the support.
        scores = ops.where(mask, scores, ops.full_like(scores, -1.0e9))
    # Shift by the max for stability; sparsemax is shift invariant.
    scores = scores - ops.stop_gradient(ops.max(scores, axis=-1, keepdims=True))
    z_sorted = ops.flip(ops.sort(scores, axis=-1), axis=-1)
    n = ops.shape(scores)[-1]
    k = ops.cast(ops.arange(1, n + 1), "float32")
    z_cumsum = ops.cumsum(z_sorted, axis=-1)
    in_support = ops.cast(1.0 + k * z_sorted > z_cumsum, "float32")
    k_z = ops.sum(in_support, axis=-1, keepdims=True)
    # tau = (sum of the support's scores - 1) / |support|
    support_sum = ops.sum(in_support * z_sorted, axis=-1, keepdims=True)
    tau = (support_sum - 1.0) / k_z
    weights = ops.maximum(scores - tau, 0.0)
    if mask is not None:
        weights = weights * ops.cast(mask, "float32")
        any_valid = ops.any(mask, axis=-1, keepdims=True)
        weights = ops.where(any_valid, weights, ops.zeros_like(weights))
    if axis != rank - 1:
        weights = ops.moveaxis(weights, -1, axis)
    return weights


def normalize_scores(scores, mask=None, probability_fn="softmax", axis=-1):
    """Dispatches to `masked_softmax`, `masked_sparsemax` or `masked_sigmoid`.

    Args:
        scores: logits tensor.
        mask: optional boolean mask broadcastable to `scores`.
        probability_fn: one of `"softmax"`, `"sparsemax"`, `"sigmoid"`.
        axis: the axis to normalise over (ignored by `"sigmoid"`).

    Returns:
        float32 weights of the shape of `scores`.
    """
    if probability_fn == "softmax":
        return masked_softmax(scores, mask, axis=axis)
    if probability_fn == "sparsemax":
        return masked_sparsemax(scores, mask, axis=axis)
    if probability_fn == "sigmoid":
        return masked_sigmoid(scores, mask)
    raise ValueError(
        f"`probability_fn` expected one of {NORMALIZERS}. Received: "
        f"probability_fn={probability_fn!r}"
    )


def zero_fully_masked_queries(context, mask):
    """Zeros the context of queries whose keys are all masked.

    With `masked_softmax` their weights are already zero, so the context is
    zero too; this helper exists for paths (sigmoid gates, biases added after
    the weighted sum) where that is not automatic.

    Args:
        context: `[B, Tq, D]` tensor.
        mask: boolean mask broadcastable to `[B, Tq, Tk]`, or `None`.

    Returns:
        `context` with fully-masked query rows set to zero.
    """
    if mask is None:
        return context
    valid = ops.any(ops.cast(mask, "bool"), axis=-1, keepdims=True)
    return context * ops.cast(valid, context.dtype)
