"""Memory-efficient chunked attention (Rabe & Staats 2021), keras.ops only.

Rabe & Staats 2021, "Self-attention Does Not Need O(n²) Memory"
(https://arxiv.org/abs/2112.05682): queries and keys are processed in
chunks; each query chunk keeps a running maximum and a running sum of
exponentials (a running log-sum-exp) over the key chunks, so no `[T, S]`
matrix is ever materialised and peak memory grows linearly with the
sequence length instead of quadratically. The backward pass is a custom
gradient in the style of FlashAttention (Dao et al. 2022): it recomputes the
attention probabilities chunk by chunk from the saved log-sum-exp, so it
stays memory-light too (automatic differentiation through the loops would
store every chunk's probabilities, i.e. the full `[T, S]` matrix again).

Two public functions share one implementation:
- `chunked_attention(query, key, value, ...)`: the layout of
  `keras.ops.dot_product_attention`, `[B, T, N, H]`;
- `blockwise_attention(query, key_t, value, ...)`: the heads-first layout
  `MultiHeadAttention` works in (no extra transposes).

Masks follow the project convention (boolean, `True` = may attend); a query
whose keys are all masked gets a zero output and a zero gradient, never NaN.

Performance notes: on TensorFlow the loops run in the graph (or XLA) with
serialised iterations (see `_after`), so peak memory stays at a few chunks.
On JAX, call it under `jax.jit` (Keras's `fit`/`predict` do): in JAX's eager
mode every call compiles its loops again (~1 s).
"""

import math

from keras import ops

from layers.validation import check_positive_int

DEFAULT_QUERY_CHUNK_SIZE = 256
DEFAULT_KEY_CHUNK_SIZE = 512
# A masked logit. Finite, so that `masked - running_max` is never inf - inf.
_MASKED = -1.0e30
# The log-sum-exp reported for a query without any valid key:
# `exp(logit - NO_KEY_LSE)` is exactly zero for every logit.
NO_KEY_LSE = 1.0e30


def _dim(x, axis):
    """The static size of `x` along `axis`, or a scalar tensor if unknown."""
    size = x.shape[axis]
    return int(size) if size is not None else ops.shape(x)[axis]


def _is_static(*values):
    return all(isinstance(v, int) for v in values)


def _ceil_div(a, b):
    if _is_static(a, b):
        return -(-a // b)
    return (a + b - 1) // b


def _clip_index(index, upper):
    """`index` clipped to `[0, upper]`, as a Python int when static."""
    if _is_static(index, upper):
        return max(0, min(index, upper))
    return ops.clip(ops.convert_to_tensor(index, "int32"), 0, upper)


def _after(index, tensor):
    """`index`, made data-dependent on `tensor` (the previous iteration's).

    TensorFlow runs up to 10 iterations of a `while_loop` at once when they
    do not depend on each other, and each would hold its own `[Cq, Ck]`
    blocks: peak memory measured ~5x higher. Slicing with an index that
    depends on the loop carry serialises the iterations. The added term is
    always 0, also for NaN or inf (`|x| < -1` is false).
    """
    first = ops.reshape(tensor, (-1,))[0]
    return index + ops.cast(ops.less(ops.abs(first), -1.0), "int32")


def _pad_axis(x, axis, amount, value=0):
    """Pads `x` at the end of `axis` by `amount` (int or scalar tensor)."""
    if isinstance(amount, int) and amount == 0:
        return x
    widths = [[0, 0] for _ in range(len(x.shape))]
    widths[axis] = [0, amount]
    return ops.pad(x, widths, constant_values=value)


def _check_rank(name, tensor, rank, layout):
    if len(tensor.shape) != rank:
        raise ValueError(
            f"`{name}` must have rank {rank} ({layout}). "
            f"Received: {name}.shape={tuple(tensor.shape)}"
        )


def _check_equal(what, a, b, names, shapes):
    if a is not None and b is not None and a != b:
        raise ValueError(
            f"{what} must match. Received: {names[0]}.shape={shapes[0]} and "
            f"{names[1]}.shape={shapes[1]}"
        )


def blockwise_attention(
    query,
    key_t,
    value,
    query_mask=None,
    value_mask=None,
    attention_mask=None,
    is_causal=False,
    causal_offset=0,
    query_chunk_size=DEFAULT_QUERY_CHUNK_SIZE,
    key_chunk_size=DEFAULT_KEY_CHUNK_SIZE,
    return_lse=False,
):
    """Chunked attention on heads-first, pre-scaled tensors.

    The layout `MultiHeadAttention` computes in, with grouped-query attention
    built in: `K` key/value heads, each shared by `G` query heads (query head
    `k * G + g` uses key/value head `k`; `G = 1` is ordinary multi-head
    attention).

    Args:
        query: `[B, K, G, T, H]` queries, already multiplied by the logit
            scale (e.g. `1 / sqrt(H)`).
        key_t: `[B, K, H, S]` keys, transposed.
        value: `[B, K, S, Hv]` values.
        query_mask: optional boolean `[B, T]`; masked queries get a zero
            output.
        value_mask: optional boolean `[B, S]`; masked keys are never attended.
        attention_mask: optional boolean `[B, T, S]` (size-1 dimensions
            broadcast). Note that this tensor is itself `O(T * S)`; prefer
            `query_mask`, `value_mask` and `is_causal`, which cost nothing.
        is_causal: query `i` attends key `j` only when
            `j <= i + causal_offset`; key chunks entirely in the future are
            skipped, forward and backward.
        causal_offset: position of the first query on the key axis (int or
            scalar tensor), e.g. the number of cached keys.
        query_chunk_size: queries per chunk (clipped to `T`).
        key_chunk_size: keys per chunk (clipped to `S`).
        return_lse: also return the float32 log-sum-exp of each query's
            logits, `[B, K, G, T]` (differentiable); a query without any
            valid key gets `NO_KEY_LSE`.

    Returns:
        `[B, K, G, T, Hv]` tensor in `value`'s dtype, and the log-sum-exp
        when `return_lse`.
    """
    check_positive_int("query_chunk_size", query_chunk_size)
    check_positive_int("key_chunk_size", key_chunk_size)
    _check_rank("query", query, 5, "[B, K, G, T, H]")
    _check_rank("key_t", key_t, 4, "[B, K, H, S]")
    _check_rank("value", value, 4, "[B, K, S, Hv]")
    heads, groups = int(query.shape[1]), int(query.shape[2])
    head_dim, value_dim = int(query.shape[4]), int(value.shape[3])
    t_len, s_len = _dim(query, 3), _dim(key_t, 3)
    dtype = value.dtype

    q_chunk = (
        min(query_chunk_size, t_len)
        if _is_static(t_len)
        else (query_chunk_size)
    )
    k_chunk = (
        min(key_chunk_size, s_len) if _is_static(s_len) else (key_chunk_size)
    )
    num_q, num_k = _ceil_div(t_len, q_chunk), _ceil_div(s_len, k_chunk)
    t_pad, s_pad = num_q * q_chunk - t_len, num_k * k_chunk - s_len

    query = _pad_axis(query, 3, t_pad)
    key_t = _pad_axis(key_t, 3, s_pad)
    value = _pad_axis(value, 2, s_pad)

    # Key validity [B|1, S_padded]: the value mask, and the padding keys.
    key_valid = None
    if value_mask is not None:
        key_valid = _pad_axis(ops.cast(value_mask, "bool"), 1, s_pad, False)
    elif not (isinstance(s_pad, int) and s_pad == 0):
        positions = ops.arange(num_k * k_chunk)
        key_valid = ops.expand_dims(ops.less(positions, s_len), 0)
    query_valid = None
    if query_mask is not None:
        query_valid = _pad_axis(ops.cast(query_mask, "bool"), 1, t_pad, False)
    pair_mask = None
    if attention_mask is not None:
        pair_mask = ops.cast(attention_mask, "bool")
        if pair_mask.shape[1] != 1:
            pair_mask = _pad_axis(pair_mask, 1, t_pad, False)
        if pair_mask.shape[2] != 1:
            pair_mask = _pad_axis(pair_mask, 2, s_pad, False)

    def block_mask(i, j):
        """Boolean mask broadcastable to `[B, K, G, Cq, Ck]`, or None."""
        mask = None
        if key_valid is not None:
            kv = ops.slice(key_valid, (0, j * k_chunk), (-1, k_chunk))
            mask = ops.reshape(kv, (-1, 1, 1, 1, k_chunk))
        if pair_mask is not None:
            rows = 1 if pair_mask.shape[1] == 1 else q_chunk
            cols = 1 if pair_mask.shape[2] == 1 else k_chunk
            start = (
                0,
                0 if rows == 1 else i * q_chunk,
                0 if cols == 1 else j * k_chunk,
            )
            pm = ops.slice(pair_mask, start, (-1, rows, cols))
            pm = ops.expand_dims(ops.expand_dims(pm, 1), 1)
            mask = pm if mask is None else ops.logical_and(mask, pm)
        if is_causal:
            rows = ops.arange(q_chunk) + (i * q_chunk + causal_offset)
            cols = ops.arange(k_chunk) + j * k_chunk
            cm = ops.greater_equal(
                ops.expand_dims(rows, -1), ops.expand_dims(cols, 0)
            )
            cm = ops.reshape(cm, (1, 1, 1, q_chunk, k_chunk))
            mask = cm if mask is None else ops.logical_and(mask, cm)
        return mask

    def masked_logits(q_i, kt_j, i, j):
        # logits: [B, K, G * Cq, Ck], float32 whatever the compute dtype.
        logits = ops.cast(ops.matmul(q_i, kt_j), "float32")
        mask = block_mask(i, j)
        if mask is None:
            return logits
        logits = ops.reshape(logits, (-1, heads, groups, q_chunk, k_chunk))
        logits = ops.where(mask, logits, _MASKED)
        return ops.reshape(logits, (-1, heads, groups * q_chunk, k_chunk))

    def key_chunks_for(i):
        """Key chunks query chunk `i` can see: all, or up to the diagonal."""
        if not is_causal:
            return num_k
        last_row = i * q_chunk + q_chunk - 1 + causal_offset
        return _clip_index(last_row // k_chunk + 1, num_k)

    def first_query_chunk_for(j):
        """First query chunk that sees key chunk `j` (causal), else 0."""
        if not is_causal:
            return 0
        return _clip_index((j * k_chunk - causal_offset) // q_chunk, num_q)

    def q_slice(x, i, width):
        """Query chunk `i` of a `[B, K, G, Tp, width]` tensor, flattened."""
        chunk = ops.slice(
            x, (0, 0, 0, i * q_chunk, 0), (-1, heads, groups, q_chunk, width)
        )
        return ops.reshape(chunk, (-1, heads, groups * q_chunk, width))

    def row_slice(x, i):
        """Query chunk `i` of a `[B, K, G, Tp]` tensor as `[B, K, G*Cq, 1]`."""
        chunk = ops.slice(
            x, (0, 0, 0, i * q_chunk), (-1, heads, groups, q_chunk)
        )
        return ops.reshape(chunk, (-1, heads, groups * q_chunk, 1))

    def k_slices(kt, v, j):
        kt_j = ops.slice(
            kt, (0, 0, 0, j * k_chunk), (-1, heads, head_dim, k_chunk)
        )
        v_j = ops.slice(
            v, (0, 0, j * k_chunk, 0), (-1, heads, k_chunk, value_dim)
        )
        return kt_j, v_j

    def forward(q, kt, v):
        batch = ops.shape(q)[0]
        rows = groups * q_chunk

        def query_chunk(i, carry):
            out, lse = carry
            i = _after(i, out)
            q_i = q_slice(q, i, head_dim)

            def key_chunk(j, state):
                run_max, run_sum, acc = state
                j = _after(j, run_sum)
                kt_j, v_j = k_slices(kt, v, j)
                logits = masked_logits(q_i, kt_j, i, j)
                new_max = ops.maximum(
                    run_max, ops.max(logits, axis=-1, keepdims=True)
                )
                # Rows without any valid key so far keep a 0 reference, so
                # their (masked) logits exponentiate to exactly 0.
                ref = ops.where(new_max > 0.5 * _MASKED, new_max, 0.0)
                probs = ops.exp(logits - ref)
                rescale = ops.exp(run_max - ref)
                run_sum = run_sum * rescale + ops.sum(
                    probs, axis=-1, keepdims=True
                )
                acc = acc * rescale + ops.cast(
                    ops.matmul(ops.cast(probs, dtype), v_j), "float32"
                )
                return new_max, run_sum, acc

            init = (
                ops.full((batch, heads, rows, 1), _MASKED, "float32"),
                ops.zeros((batch, heads, rows, 1), "float32"),
                ops.zeros((batch, heads, rows, value_dim), "float32"),
            )
            run_max, run_sum, acc = ops.fori_loop(
                0, key_chunks_for(i), key_chunk, init
            )
            has_key = run_sum > 0.0
            out_i = acc / ops.where(has_key, run_sum, 1.0)
            lse_i = ops.where(
                has_key,
                run_max + ops.log(ops.where(has_key, run_sum, 1.0)),
                NO_KEY_LSE,
            )
            out = ops.slice_update(
                out,
                (0, 0, 0, i * q_chunk, 0),
                ops.reshape(out_i, (-1, heads, groups, q_chunk, value_dim)),
            )
            lse = ops.slice_update(
                lse,
                (0, 0, 0, i * q_chunk),
                ops.reshape(lse_i, (-1, heads, groups, q_chunk)),
            )
            return out, lse

        t_total = num_q * q_chunk
        init = (
            ops.zeros((batch, heads, groups, t_total, value_dim), "float32"),
            ops.zeros((batch, heads, groups, t_total), "float32"),
        )
        out, lse = ops.fori_loop(0, num_q, query_chunk, init)
        if query_valid is not None:
            valid = ops.reshape(query_valid, (-1, 1, 1, t_total))
            out = out * ops.cast(ops.expand_dims(valid, -1), "float32")
            lse = ops.where(valid, lse, NO_KEY_LSE)
        return out, lse

    def backward(q, kt, v, out, lse, d_out, d_lse):
        batch = ops.shape(q)[0]
        d_out = ops.cast(d_out, dtype)
        # d logit_ij = p_ij (dP_ij - delta_i) with
        # delta_i = sum_j p_ij dP_ij - dLSE_i = dO_i . O_i - dLSE_i
        # (the FlashAttention-2 identity, plus the log-sum-exp's own gradient).
        delta = ops.sum(ops.cast(d_out, "float32") * out, axis=-1)
        if d_lse is not None:
            delta = delta - ops.cast(d_lse, "float32")
        t_total = num_q * q_chunk

        def key_chunk(j, carry):
            dq, dkt, dvt = carry
            j = _after(j, dkt)
            kt_j, v_j = k_slices(kt, v, j)
            k_j = ops.swapaxes(kt_j, -1, -2)
            vt_j = ops.swapaxes(v_j, -1, -2)

            def query_chunk(i, state):
                dkt_j, dvt_j, dq = state
                i = _after(i, dkt_j)
                q_i = q_slice(q, i, head_dim)
                do_i = q_slice(d_out, i, value_dim)
                lse_i = row_slice(lse, i)
                delta_i = row_slice(delta, i)
                logits = masked_logits(q_i, kt_j, i, j)
                probs = ops.exp(logits - lse_i)
                d_probs = ops.cast(ops.matmul(do_i, vt_j), "float32")
                d_logits = ops.cast(probs * (d_probs - delta_i), q.dtype)
                dvt_j = dvt_j + ops.cast(
                    ops.matmul(
                        ops.swapaxes(do_i, -1, -2), ops.cast(probs, dtype)
                    ),
                    "float32",
                )
                dkt_j = dkt_j + ops.cast(
                    ops.matmul(ops.swapaxes(q_i, -1, -2), d_logits), "float32"
                )
                dq_i = ops.reshape(
                    ops.cast(ops.matmul(d_logits, k_j), "float32"),
                    (-1, heads, groups, q_chunk, head_dim),
                )
                start = (0, 0, 0, i * q_chunk, 0)
                previous = ops.slice(
                    dq, start, (-1, heads, groups, q_chunk, head_dim)
                )
                dq = ops.slice_update(dq, start, previous + dq_i)
                return dkt_j, dvt_j, dq

            init = (
                ops.zeros((batch, heads, head_dim, k_chunk), "float32"),
                ops.zeros((batch, heads, value_dim, k_chunk), "float32"),
                dq,
            )
            dkt_j, dvt_j, dq = ops.fori_loop(
                first_query_chunk_for(j), num_q, query_chunk, init
            )
            dkt = ops.slice_update(dkt, (0, 0, 0, j * k_chunk), dkt_j)
            dvt = ops.slice_update(dvt, (0, 0, 0, j * k_chunk), dvt_j)
            return dq, dkt, dvt

        s_total = num_k * k_chunk
        init = (
            ops.zeros((batch, heads, groups, t_total, head_dim), "float32"),
            ops.zeros((batch, heads, head_dim, s_total), "float32"),
            ops.zeros((batch, heads, value_dim, s_total), "float32"),
        )
        dq, dkt, dvt = ops.fori_loop(0, num_k, key_chunk, init)
        return (
            ops.cast(dq, q.dtype),
            ops.cast(dkt, kt.dtype),
            ops.cast(ops.swapaxes(dvt, -1, -2), v.dtype),
        )

    @ops.custom_gradient
    def attend(q, kt, v):
        out, lse = forward(q, kt, v)

        def grad(*args, upstream=None):
            if upstream is None:
                upstream = args if len(args) > 1 else args[0]
            d_out, d_lse = upstream
            if d_out is None:
                d_out = ops.zeros_like(out)
            return backward(q, kt, v, out, lse, d_out, d_lse)

        return (ops.cast(out, dtype), lse), grad

    out, lse = attend(query, key_t, value)
    if not (isinstance(t_pad, int) and t_pad == 0):
        out = out[:, :, :, :t_len]
        lse = lse[:, :, :, :t_len]
    return (out, lse) if return_lse else out


def chunked_attention(
    query,
    key,
    value,
    query_mask=None,
    value_mask=None,
    attention_mask=None,
    is_causal=False,
    causal_offset=0,
    scale=None,
    query_chunk_size=DEFAULT_QUERY_CHUNK_SIZE,
    key_chunk_size=DEFAULT_KEY_CHUNK_SIZE,
):
    """Memory-efficient scaled dot-product attention (Rabe & Staats 2021).

    Computes `softmax(scale * Q K^T + mask) V` like
    `keras.ops.dot_product_attention`, but in query and key chunks with a
    running log-sum-exp, so peak memory is `O(T * S / chunks)` instead of
    `O(T * S)`, in the forward and the (custom, recomputing) backward pass.
    Outputs and gradients equal the standard computation up to float
    rounding. Grouped-query attention is built in: `key`/`value` may have
    fewer heads than `query` (Ainslie et al. 2023).

    Reference: Rabe & Staats 2021, "Self-attention Does Not Need O(n²)
    Memory" (https://arxiv.org/abs/2112.05682); the backward pass follows
    Dao et al. 2022, "FlashAttention".

    Args:
        query: `[B, T, N, H]` tensor.
        key: `[B, S, K, H]` tensor; `N` must be a multiple of `K`.
        value: `[B, S, K, Hv]` tensor.
        query_mask: optional boolean `[B, T]`, `True` = valid query. Masked
            queries get a zero output.
        value_mask: optional boolean `[B, S]`, `True` = key may be attended.
        attention_mask: optional boolean `[B, T, S]` (size-1 dimensions
            broadcast). It is itself `O(T * S)`; prefer the other masks.
        is_causal: query `i` attends key `j` only if
            `j <= i + causal_offset`.
        causal_offset: int or scalar tensor, the position of the first query
            on the key axis (e.g. the number of cached keys).
        scale: logit scale; defaults to `1 / sqrt(H)`.
        query_chunk_size: positive int, queries per chunk.
        key_chunk_size: positive int, keys per chunk.

    Returns:
        `[B, T, N, Hv]` tensor. A query with no valid key gets zeros.

    Example:

    >>> import numpy as np
    >>> q = np.random.rand(2, 300, 4, 16).astype("float32")
    >>> kv = np.random.rand(2, 300, 2, 16).astype("float32")
    >>> out = chunked_attention(q, kv, kv, is_causal=True,
    ...                         query_chunk_size=128, key_chunk_size=128)
    >>> tuple(out.shape)
    (2, 300, 4, 16)
    """
    check_positive_int("query_chunk_size", query_chunk_size)
    check_positive_int("key_chunk_size", key_chunk_size)
    query = ops.convert_to_tensor(query)
    key = ops.convert_to_tensor(key)
    value = ops.convert_to_tensor(value)
    _check_rank("query", query, 4, "[B, T, N, H]")
    _check_rank("key", key, 4, "[B, S, K, H]")
    _check_rank("value", value, 4, "[B, S, K, Hv]")
    shapes = {
        n: tuple(x.shape)
        for n, x in (("query", query), ("key", key), ("value", value))
    }
    for a, b, axes, what in (
        (
            "query",
            "key",
            (0, -1),
            "The batch size and head size of query and key",
        ),
        (
            "key",
            "value",
            (0, 1, 2),
            "The batch size, length and number of heads of key and value",
        ),
    ):
        for axis in axes:
            _check_equal(
                what,
                shapes[a][axis],
                shapes[b][axis],
                (a, b),
                (shapes[a], shapes[b]),
            )
    num_heads, kv_heads = shapes["query"][2], shapes["key"][2]
    if num_heads % kv_heads:
        raise ValueError(
            "The number of query heads must be a multiple of the number of "
            f"key/value heads. Received: query.shape={shapes['query']} and "
            f"key.shape={shapes['key']}"
        )
    groups = num_heads // kv_heads
    head_dim = shapes["query"][3]
    if scale is None:
        scale = 1.0 / math.sqrt(head_dim)
    batch, t_len = ops.shape(query)[0], ops.shape(query)[1]
    # query: [B, T, K, G, H] -> [B, K, G, T, H], scaled once here.
    q = ops.reshape(query, (batch, t_len, kv_heads, groups, head_dim))
    q = ops.transpose(q, (0, 2, 3, 1, 4)) * ops.cast(scale, query.dtype)
    out = blockwise_attention(
        q,
        ops.transpose(key, (0, 2, 3, 1)),
        ops.transpose(value, (0, 2, 1, 3)),
        query_mask=query_mask,
        value_mask=value_mask,
        attention_mask=attention_mask,
        is_causal=is_causal,
        causal_offset=causal_offset,
        query_chunk_size=query_chunk_size,
        key_chunk_size=key_chunk_size,
    )
    # out: [B, K, G, T, Hv] -> [B, T, N, Hv]
    out = ops.transpose(out, (0, 3, 1, 2, 4))
    return ops.reshape(out, (batch, t_len, num_heads, shapes["value"][3]))
