"""The attention computations behind `MultiHeadAttention`.

Once queries, keys and values are projected, `AttentionKernel` picks how to
compute `softmax(q k^T) v` for one call and runs it:

- the **standard** path, `dense_attention`: the `[T, S]` weights
  materialised, with a hand-written gradient (the FlashAttention identity);
  the only path that returns scores or applies dropout;
- the **chunked** path (Rabe & Staats 2021, `layers.chunked_attention`):
  memory linear in the sequence length, chosen for long sequences;
- the backend's fused **flash** kernel, `keras.ops.dot_product_attention`
  (Dao et al. 2022), where the backend has one, with a clean fallback.

Every path works heads-first with grouped-query attention built in (`K`
key/value heads, each shared by `G = N / K` query heads) and honours the
project's mask convention: a query whose keys are all masked gets zero
weights and a zero context, never NaN. Logits and softmax are float32 under
mixed precision.
"""

import warnings

import keras
from keras import ops

from layers.attention_layout import dim_sizes
from layers.chunked_attention import NO_KEY_LSE
from layers.chunked_attention import blockwise_attention
from layers.masking import masked_softmax
from layers.masking import valid_query_rows


def dense_attention(q, kt, v, mask, keep, groups, return_weights):
    """Softmax attention with the `[T, S]` weights materialised.

    `q [B, K, G*T, H]` (pre-scaled), `kt [B, K, H, S]`, `v [B, K, S, Hv]`;
    `mask` boolean, broadcastable to `[B, K, G, T, S]`; `keep` the float32
    dropout multipliers `[B, K, G*T, S]` (0 or `1 / (1 - rate)`) or None.
    Returns the context `[B, K, G*T, Hv]` and, if `return_weights`, the
    float32 weights before dropout.

    A custom gradient: `d logits = W * (dW - delta)` with
    `delta = dO . O (+ sum W * dW_returned)` (the FlashAttention identity)
    and every large matmul in plain (non-transposed) layout, which is
    markedly faster on CPU than differentiating the graph (fewer passes over
    the `[T, S]` tensors, no transposed-operand matmul on them).
    """
    dtype = v.dtype

    def normalise(logits):
        if mask is None:
            return ops.softmax(logits, axis=-1)
        shape = ops.shape(logits)
        by_group = ops.reshape(
            logits, (-1, shape[1], groups, shape[2] // groups, shape[3])
        )
        return ops.reshape(masked_softmax(by_group, mask), shape)

    @ops.custom_gradient
    def attend(q, kt, v):
        weights = normalise(ops.cast(ops.matmul(q, kt), "float32"))
        probs = weights if keep is None else weights * keep
        probs = ops.cast(probs, dtype)
        out = ops.matmul(probs, v)

        def grad(*args, upstream=None):
            if upstream is None:
                upstream = args if len(args) > 1 else args[0]
            if return_weights:
                d_out, d_weights = upstream
            else:
                d_out, d_weights = upstream, None
            if d_out is None:
                d_out = ops.zeros_like(out)
            d_out = ops.cast(d_out, dtype)
            delta = ops.sum(
                ops.cast(d_out, "float32") * ops.cast(out, "float32"),
                axis=-1,
                keepdims=True,
            )
            vt = ops.swapaxes(v, -1, -2)
            if (
                keep is None
                and d_weights is None
                and keras.backend.standardize_dtype(dtype) == "float32"
            ):
                # dP - delta as one matmul, [dO, -delta] @ [V^T; 1]: one
                # pass less over the [T, S] tensors, which are what costs
                # (memory-bound) on CPU.
                ones = ops.ones_like(vt[..., :1, :])
                shifted = ops.matmul(
                    ops.concatenate([d_out, -delta], axis=-1),
                    ops.concatenate([vt, ones], axis=-2),
                )
                d_logits = weights * shifted
            else:
                d_probs = ops.cast(ops.matmul(d_out, vt), "float32")
                if keep is not None:
                    d_probs = d_probs * keep
                if d_weights is not None:
                    d_weights = ops.cast(d_weights, "float32")
                    d_probs = d_probs + d_weights
                    delta = delta + ops.sum(
                        weights * d_weights, axis=-1, keepdims=True
                    )
                d_logits = weights * (d_probs - delta)
            d_logits = ops.cast(d_logits, q.dtype)
            dq = ops.matmul(d_logits, ops.swapaxes(kt, -1, -2))
            dkt = ops.matmul(ops.swapaxes(q, -1, -2), d_logits)
            dvt = ops.matmul(ops.swapaxes(d_out, -1, -2), probs)
            return dq, dkt, ops.swapaxes(dvt, -1, -2)

        if return_weights:
            return (out, weights), grad
        return out, grad

    result = attend(q, kt, v)
    return result if return_weights else (result, None)


def _accelerator_available():
    return any(
        d.split(":")[0].lower() in ("gpu", "tpu", "cuda")
        for d in keras.distribution.list_devices()
    )


class AttentionKernel:
    """Chooses and runs the attention path of one `MultiHeadAttention` call.

    The settings (`dropout`, `flash_attention`, `attention_impl`,
    `query_chunk_size`, `key_chunk_size`, `chunk_threshold`, `name`) are
    read from `settings` (the layer) at each call, so changing e.g.
    `layer.attention_impl` takes effect at the next call.

    Args:
        settings: the object holding the settings above (the layer).
        seed_generator: `keras.random.SeedGenerator` of the dropout, or None
            when the layer has no dropout.
    """

    def __init__(self, settings, seed_generator=None):
        self.settings = settings
        self.seed_generator = seed_generator
        self.flash_warned = False

    def __call__(
        self, query, key, value, masks, training=None, return_scores=False
    ):
        """Attention of projected heads.

        Args:
            query: `[B, T, N, H]` queries, already scaled by the logit scale.
            key: `[B, S, K, H]` keys; `N` is a multiple of `K`.
            value: `[B, S, K, Hv]` values.
            masks: an `AttentionMasks` in the `[B, T, S]` layout.
            training: whether dropout is active.
            return_scores: whether to return the weights.

        Returns:
            `(context, scores, valid_rows)`: the context `[B, T, N, Hv]`; the
            weights `[B, N, T, S]` before dropout in the context's dtype (or
            None); and a boolean `[B, T]` of queries that have at least one
            key, or None when every query has one.
        """
        num_heads, heads = int(query.shape[2]), int(key.shape[2])
        groups = num_heads // heads
        hk, hv = int(query.shape[3]), int(value.shape[3])
        t_len = dim_sizes(query, (1,))[0]
        s_len = dim_sizes(key, (1,))[0]

        if self._use_backend_kernel(training, return_scores):
            mask = masks.merged(query, key)
            causal_only = masks.causal_only
            context = self._backend_kernel(
                query, key, value, None if causal_only else mask, causal_only
            )
            if context is not None:
                rows = valid_query_rows(mask) if masks.has_padding else None
                return context, None, rows

        # Heads first: q [B, K, G, T, H], kt [B, K, H, S], v [B, K, S, Hv]
        q = ops.transpose(
            ops.reshape(query, (-1, t_len, heads, groups, hk)),
            (0, 2, 3, 1, 4),
        )
        kt = ops.transpose(key, (0, 2, 3, 1))
        v = ops.transpose(value, (0, 2, 1, 3))
        if keras.backend.standardize_dtype(q.dtype) != "float32":
            # Mixed precision: the logits (and their gradients) in float32.
            q, kt = ops.cast(q, "float32"), ops.cast(kt, "float32")

        def standard():
            mask = masks.merged(query, key)
            context, weights = self._standard(
                q, kt, v, mask, training, return_scores
            )
            rows = valid_query_rows(mask) if masks.has_padding else None
            return context, weights, rows

        def chunked():
            masks.check_shapes(query, key)
            context, lse = blockwise_attention(
                q,
                kt,
                v,
                query_mask=masks.query_mask,
                value_mask=masks.value_mask_with_slots(),
                attention_mask=masks.band_attention_mask(query, key),
                is_causal=masks.use_causal_mask,
                causal_offset=masks.causal_offset,
                query_chunk_size=self.settings.query_chunk_size,
                key_chunk_size=self.settings.key_chunk_size,
                return_lse=True,
            )
            rows = None
            if masks.has_padding:
                rows = lse[:, 0, 0] < 0.5 * NO_KEY_LSE
            return context, None, rows

        impl = self._resolve_impl(t_len, s_len, masks, training, return_scores)
        if impl == "standard":
            context, weights, valid_rows = standard()
        elif impl == "chunked":
            context, weights, valid_rows = chunked()
        else:  # "dynamic": decide at run time (TensorFlow, unknown lengths)
            threshold = self.settings.chunk_threshold**2

            def pick(fn):
                def branch():
                    c, _, r = fn()
                    return (c,) if r is None else (c, r)

                return branch

            results = ops.cond(
                t_len * s_len >= threshold, pick(chunked), pick(standard)
            )
            context, weights = results[0], None
            valid_rows = results[1] if len(results) > 1 else None

        # context: [B, K, G, T, Hv] -> [B, T, N, Hv]
        context = ops.reshape(
            ops.transpose(context, (0, 3, 1, 2, 4)),
            (-1, t_len, num_heads, hv),
        )
        scores = None
        if return_scores:
            scores = ops.reshape(
                ops.cast(weights, value.dtype), (-1, num_heads, t_len, s_len)
            )
        return context, scores, valid_rows

    def dropout_active(self, training):
        return self.settings.dropout > 0.0 and bool(training)

    def _resolve_impl(self, t_len, s_len, masks, training, return_scores):
        if return_scores or self.dropout_active(training):
            return "standard"
        if masks.per_head:
            # A per-head mask is itself [B, N, T, S]: chunking saves nothing.
            return "standard"
        if self.settings.attention_impl != "auto":
            return self.settings.attention_impl
        if isinstance(t_len, int) and isinstance(s_len, int):
            long = t_len * s_len >= self.settings.chunk_threshold**2
            return "chunked" if long else "standard"
        return "dynamic"

    def _standard(self, q, kt, v, mask, training, return_scores):
        """Materialised attention. Returns context `[B, K, G, T, Hv]` and
        float32 weights `[B, K, G, T, S]` before dropout (or None)."""
        heads, groups = int(q.shape[1]), int(q.shape[2])
        t_len, s_len = dim_sizes(q, (3,))[0], dim_sizes(kt, (3,))[0]
        rows = groups * t_len
        q_flat = ops.reshape(q, (-1, heads, rows, int(q.shape[4])))
        if mask is not None and len(mask.shape) == 4:
            # Per head: [B, N, T, S] -> [B, K, G, T, S]
            mask = ops.broadcast_to(
                mask, (ops.shape(q)[0], heads * groups, t_len, s_len)
            )
            mask = ops.reshape(mask, (-1, heads, groups, t_len, s_len))
        elif mask is not None:
            # mask: [B, T, S] -> [B, 1, 1, T, S]
            mask = ops.expand_dims(ops.expand_dims(mask, 1), 1)
        keep = None
        if self.dropout_active(training):
            rate = self.settings.dropout
            noise = keras.random.uniform(
                (ops.shape(q)[0], heads, rows, s_len),
                seed=self.seed_generator,
            )
            keep = ops.cast(noise >= rate, "float32") / (1.0 - rate)
        context, weights = dense_attention(
            q_flat,
            kt,
            v,
            mask=mask,
            keep=keep,
            groups=groups,
            return_weights=return_scores,
        )
        context = ops.reshape(
            context, (-1, heads, groups, t_len, int(v.shape[3]))
        )
        if weights is not None:
            weights = ops.reshape(weights, (-1, heads, groups, t_len, s_len))
        return context, weights

    # === The backend's flash kernel ===

    def _use_backend_kernel(self, training, return_scores):
        requested = self.settings.flash_attention
        if requested is False or return_scores:
            return False
        if self.dropout_active(training):
            return False
        wanted = requested
        if wanted is None:
            wanted = keras.config.is_flash_attention_enabled()
        if wanted is None:
            return (
                keras.backend.backend() != "tensorflow"
                and _accelerator_available()
            )
        if not wanted:
            return False
        if keras.backend.backend() == "tensorflow":
            self._warn_flash_fallback(
                "the TensorFlow backend has no flash kernel"
            )
            return False
        return True

    def _warn_flash_fallback(self, reason):
        if not self.flash_warned:
            self.flash_warned = True
            warnings.warn(
                f"{self.settings.name}: flash attention requested but "
                f"unavailable ({reason}); using this layer's own attention "
                f"path (attention_impl={self.settings.attention_impl!r}).",
                stacklevel=4,
            )

    def _backend_kernel(self, q, k, v, mask, causal_only):
        """`keras.ops.dot_product_attention` on `[B, T, N, H]` tensors."""
        if mask is not None and len(mask.shape) == 3:
            mask = ops.expand_dims(mask, 1)  # [B, 1, T, S]
        requested = self.settings.flash_attention
        try:
            return ops.dot_product_attention(
                q,
                k,
                v,
                mask=mask,
                scale=1.0,  # already folded into the query projection
                is_causal=causal_only,
                flash_attention=requested
                or keras.config.is_flash_attention_enabled(),
            )
        except (
            ValueError,
            RuntimeError,
            ImportError,
            NotImplementedError,
        ) as e:
            if not requested:
                raise
            self._warn_flash_fallback(str(e).splitlines()[0])
            return None
