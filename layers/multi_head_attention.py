"""Multi-head attention (Vaswani et al. 2017) with fused QKV, GQA and a cache.

Beyond `keras.layers.MultiHeadAttention`: one fused QKV projection for
self-attention, grouped-query attention (Ainslie et al. 2023), a static-shape
incremental-decoding cache, masks honoured in every code path, attention
scores returnable with dropout, flash attention passed to the backend where
it exists (Dao et al. 2022) with a clean fallback on TensorFlow, and a
memory-efficient chunked path for long sequences (Rabe & Staats 2021).
"""

import math
import warnings

import keras
from keras import ops

from layers.chunked_attention import DEFAULT_KEY_CHUNK_SIZE
from layers.chunked_attention import DEFAULT_QUERY_CHUNK_SIZE
from layers.chunked_attention import NO_KEY_LSE
from layers.chunked_attention import blockwise_attention
from layers.masking import check_mask_shape
from layers.masking import masked_softmax
from layers.masking import merge_attention_masks
from layers.masking import zero_fully_masked_queries
from layers.validation import check_choice
from layers.validation import check_positive_int
from layers.validation import check_rate
from layers.validation import check_seed

ATTENTION_IMPLS = ("auto", "standard", "chunked")


def _prod(values):
    """Product of ints and scalar tensors; an int when all are static."""
    out = 1
    for v in values:
        out = out * v
    return out


def _dims(x, axes):
    """Sizes of `x` along `axes`: static ints where known, else tensors."""
    dynamic = None
    sizes = []
    for axis in axes:
        size = x.shape[axis]
        if size is None:
            if dynamic is None:
                dynamic = ops.shape(x)
            size = dynamic[axis]
        sizes.append(size)
    return sizes


def _accelerator_available():
    return any(
        d.split(":")[0].lower() in ("gpu", "tpu", "cuda")
        for d in keras.distribution.list_devices()
    )


def _dense_attention(q, kt, v, mask, keep, groups, return_weights):
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


@keras.saving.register_keras_serializable(package="attention_zoo")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with fused QKV, GQA, a decoding cache and chunking.

    Scaled dot-product attention over `num_heads` heads (Vaswani et al. 2017,
    "Attention Is All You Need", https://arxiv.org/abs/1706.03762), a drop-in
    for `keras.layers.MultiHeadAttention` with:

    - **Fused QKV.** When `query`, `key` and `value` have the same feature
      size, one kernel `qkv_kernel` `[D, (N + 2K) * H]` holds the three
      projections; self-attention (`value is query`, `key` absent or
      `is value`) runs one matmul, cross-attention uses slices of the same
      kernel (one matmul for keys and values when `key` is absent), so one
      layer serves both and saves/loads either way. Different feature sizes
      get separate `query_kernel`, `key_kernel`, `value_kernel`. The
      `1 / sqrt(key_dim)` scale is folded into the query projection.
    - **Grouped-query attention** (Ainslie et al. 2023, "GQA",
      https://arxiv.org/abs/2305.13245): `num_key_value_heads=K` key/value
      heads, each shared by `num_heads // K` query heads (query head `n` uses
      key/value head `n // (num_heads // K)`, as in
      `keras.layers.GroupQueryAttention`). `K = 1` is multi-query attention.
    - **Masks in every path.** Padding (`query_mask`, `value_mask`, automatic
      Keras masks), `attention_mask` and `use_causal_mask` are merged once and
      honoured with dropout, with returned scores, in the chunked and flash
      paths, for 3-D and N-D inputs and with the cache. A query with no
      valid key gets zero weights and an all-zero output (the output bias is
      not added to it), never NaN. Logits and softmax are float32 under
      mixed precision.
    - **Scores with dropout.** `return_attention_scores=True` works with
      dropout; the returned weights are the softmax before dropout.
    - **Chunked attention** for long sequences (Rabe & Staats 2021,
      "Self-attention Does Not Need O(n²) Memory",
      https://arxiv.org/abs/2112.05682), see
      `layers.chunked_attention`: memory linear in the sequence length,
      same outputs and gradients as the standard path.
    - **Flash attention** (Dao et al. 2022, "FlashAttention",
      https://arxiv.org/abs/2205.14135) through
      `keras.ops.dot_product_attention` on backends that have it. On
      TensorFlow, which has none (Keras raises "not supported"), and
      wherever the backend refuses, `flash_attention=True` falls back to this
      layer's own path (chunked for long sequences under
      `attention_impl="auto"`), with one warning, instead of raising.
    - **Incremental decoding cache** (see "Decoding with a cache" below).

    Args:
        num_heads: number of query heads `N`.
        key_dim: size `H` of each query/key head.
        value_dim: size `Hv` of each value head; defaults to `key_dim`.
        dropout: dropout rate on the attention weights.
        use_bias: whether the projections have biases.
        output_shape: int or tuple, the output's trailing shape; defaults to
            the query's feature size.
        attention_axes: axes attended over for inputs of rank > 3 (as in
            Keras); `None` = every axis between batch and features, jointly.
            Other axes act as batch axes.
        num_key_value_heads: number `K` of key/value heads; must divide
            `num_heads`. Defaults to `num_heads` (ordinary multi-head).
        flash_attention: `True` requests the backend's flash kernel (with a
            clean fallback where there is none), `False` never uses the
            backend kernel, `None` follows
            `keras.config.is_flash_attention_enabled()` and otherwise uses
            the backend kernel only on GPU/TPU with a non-TensorFlow backend.
            The backend kernel is used only when no scores are returned and
            dropout is inactive.
        attention_impl: `"standard"` (materialises the `[T, S]` weights),
            `"chunked"` (memory-efficient), or `"auto"`: chunked when
            `query_length * key_length >= chunk_threshold ** 2`, no scores
            are returned and dropout is inactive. Calls that return scores or
            apply dropout always use the standard path.
        query_chunk_size: queries per chunk in the chunked path.
        key_chunk_size: keys per chunk in the chunked path.
        chunk_threshold: sequence length from which `"auto"` switches to the
            chunked path (compared as `Tq * Tk >= chunk_threshold ** 2`).
        kernel_initializer: initializer of the projection kernels (applied to
            each projection's block of a fused kernel separately).
        bias_initializer: initializer of the biases.
        kernel_regularizer: regularizer of the kernels.
        bias_regularizer: regularizer of the biases.
        activity_regularizer: regularizer of the layer's output.
        kernel_constraint: constraint of the kernels.
        bias_constraint: constraint of the biases.
        seed: int seed of the attention dropout.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]` (or `[B, *axes, Dq]`) query tensor.
        value: `[B, Tk, Dv]` value tensor.
        key: optional `[B, Tk, Dk]` key tensor; defaults to `value`.
        query_mask: optional boolean `[B, Tq]` (`query.shape[:-1]`).
        value_mask: optional boolean `[B, Tk]` (`value.shape[:-1]`).
        attention_mask: optional boolean `[B, Tq, Tk]` (for N-D inputs
            `[B, *other axes, *query attention axes, *key attention axes]`).
        return_attention_scores: also return the attention weights
            `[B, N, Tq, Tk]` (N-D: `[B, *other axes, N, *q axes, *k axes]`).
        use_causal_mask: add a causal mask (over the flattened attention
            axes for N-D inputs).
        training: whether dropout is active.
        cache: optional `[B, 2, S_max, K, key_dim]` key/value cache (see
            below). Only for 3-D inputs; needs `value_dim == key_dim`.
        cache_update_index: int or scalar int tensor, the cache slot of the
            first new token (see below).

    Returns:
        The output `[B, Tq, *output_shape]`; with `return_attention_scores`,
        `(output, scores)`; with a `cache`, the updated cache is appended:
        `(output, cache)` or `(output, scores, cache)`.

    Decoding with a cache:
        A static-shape cache in the keras-hub layout, safe inside a compiled
        decoding loop (a TensorFlow graph-mode while loop, `jax.jit`):

        - `cache = layer.initialize_cache(batch_size, max_length)` returns
          zeros `[B, 2, max_length, K, key_dim]` (keys at index 0, values at
          index 1 of axis 1).
        - Self-attention step: `out, cache = layer(x, x, cache=cache,
          cache_update_index=i, use_causal_mask=True)` projects the new
          tokens `x` `[B, Tq, D]` (one token, or a whole prompt), writes
          their keys/values into slots `i ... i + Tq - 1`, and attends over
          the cache. Slots `>= i + Tq` (not written yet) are always masked;
          with `use_causal_mask=True` new token `t` sees slots `<= i + t`.
          Stepping tokens one at a time gives exactly the outputs of the
          full causal forward pass.
        - Cross-attention: `cache = layer.compute_key_value_cache(encoder_out)`
          projects the encoder output once (`[B, 2, S, K, key_dim]`); then
          `out, cache = layer(x, None, cache=cache)` (no
          `cache_update_index`) attends over it without recomputing it.
        - In cache mode, `value_mask` / `attention_mask` index the cache
          slots: `[B, S_max]` / `[B, Tq, S_max]` (e.g. left padding of the
          prompt in beam search).

    Example:

    >>> import numpy as np
    >>> x = keras.Input((12, 32))
    >>> mha = MultiHeadAttention(num_heads=4, key_dim=8,
    ...                          num_key_value_heads=2)
    >>> y = mha(x, x, use_causal_mask=True)
    >>> model = keras.Model(x, y)
    >>> tuple(model(np.zeros((2, 12, 32), "float32")).shape)
    (2, 12, 32)
    >>> cache = mha.initialize_cache(batch_size=2, max_length=12)
    >>> step = np.zeros((2, 1, 32), "float32")
    >>> out, cache = mha(step, step, cache=cache, cache_update_index=0,
    ...                  use_causal_mask=True)
    >>> tuple(out.shape), tuple(cache.shape)
    ((2, 1, 32), (2, 2, 12, 2, 8))
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        num_key_value_heads=None,
        flash_attention=None,
        attention_impl="auto",
        query_chunk_size=DEFAULT_QUERY_CHUNK_SIZE,
        key_chunk_size=DEFAULT_KEY_CHUNK_SIZE,
        chunk_threshold=1024,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        check_positive_int("num_heads", num_heads)
        check_positive_int("key_dim", key_dim)
        check_positive_int("value_dim", value_dim, allow_none=True)
        check_positive_int(
            "num_key_value_heads", num_key_value_heads, allow_none=True
        )
        if num_key_value_heads is not None and num_heads % num_key_value_heads:
            raise ValueError(
                "`num_heads` must be a multiple of `num_key_value_heads`. "
                f"Received: num_heads={num_heads}, "
                f"num_key_value_heads={num_key_value_heads}"
            )
        check_rate("dropout", dropout)
        if output_shape is not None:
            shape = (
                (output_shape,)
                if isinstance(output_shape, int)
                else tuple(output_shape)
                if isinstance(output_shape, (list, tuple))
                else None
            )
            if not shape or any(
                isinstance(d, bool) or not isinstance(d, int) or d <= 0
                for d in shape
            ):
                raise ValueError(
                    "`output_shape` expected a positive int or a tuple of "
                    f"positive ints. Received: output_shape={output_shape!r}"
                )
        if attention_axes is not None:
            axes = (
                (attention_axes,)
                if isinstance(attention_axes, int)
                else attention_axes
            )
            if (
                not isinstance(axes, (list, tuple))
                or not axes
                or any(
                    isinstance(a, bool) or not isinstance(a, int) for a in axes
                )
            ):
                raise ValueError(
                    "`attention_axes` expected an int, a non-empty tuple of "
                    f"ints or None. Received: attention_axes={attention_axes!r}"
                )
        check_choice("flash_attention", flash_attention, (None, True, False))
        check_choice("attention_impl", attention_impl, ATTENTION_IMPLS)
        check_positive_int("query_chunk_size", query_chunk_size)
        check_positive_int("key_chunk_size", key_chunk_size)
        check_positive_int("chunk_threshold", chunk_threshold)
        check_seed("seed", seed)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.supports_masking = True
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.dropout = float(dropout)
        self.use_bias = use_bias
        self._output_shape = (
            None
            if output_shape is None
            else (output_shape,)
            if isinstance(output_shape, int)
            else tuple(output_shape)
        )
        self.attention_axes = (
            None
            if attention_axes is None
            else (attention_axes,)
            if isinstance(attention_axes, int)
            else tuple(attention_axes)
        )
        self.num_key_value_heads = num_key_value_heads
        self.flash_attention = flash_attention
        self.attention_impl = attention_impl
        self.query_chunk_size = query_chunk_size
        self.key_chunk_size = key_chunk_size
        self.chunk_threshold = chunk_threshold
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed

        # Derived sizes: N query heads in K groups of G, heads of H / Hv.
        self._kv_heads = num_key_value_heads or num_heads
        self._groups = num_heads // self._kv_heads
        self._head_value_dim = value_dim or key_dim
        self._scale = 1.0 / math.sqrt(float(key_dim))
        self._q_width = num_heads * key_dim
        self._k_width = self._kv_heads * key_dim
        self._v_width = self._kv_heads * self._head_value_dim
        self._seed_generator = (
            keras.random.SeedGenerator(seed) if dropout > 0 else None
        )
        self._fused = None
        self._flash_warned = False

    # === Weights ===

    def _block_initializer(self, widths):
        """Initialises each projection block of a fused kernel separately."""
        initializer = self.kernel_initializer

        def init(shape, dtype=None):
            return ops.concatenate(
                [initializer((shape[0], w), dtype=dtype) for w in widths],
                axis=-1,
            )

        return init

    def _add_kernel(self, name, shape, widths=None):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=(
                self._block_initializer(widths)
                if widths
                else self.kernel_initializer
            ),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _add_bias(self, name, size):
        if not self.use_bias:
            return None
        return self.add_weight(
            name=name,
            shape=(size,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None:
            raise ValueError(
                "`MultiHeadAttention` is built from its first call with a "
                "`value` tensor. Received: value=None on an unbuilt layer."
            )
        key_shape = value_shape if key_shape is None else key_shape
        self._check_shapes(
            tuple(query_shape), tuple(value_shape), tuple(key_shape)
        )
        q_dim, v_dim, k_dim = query_shape[-1], value_shape[-1], key_shape[-1]
        self._fused = q_dim == k_dim == v_dim
        widths = (self._q_width, self._k_width, self._v_width)
        if self._fused:
            # qkv_kernel: [D, N*H + K*H + K*Hv]
            self.qkv_kernel = self._add_kernel(
                "qkv_kernel", (q_dim, sum(widths)), widths
            )
            self.qkv_bias = self._add_bias("qkv_bias", sum(widths))
        else:
            self.query_kernel = self._add_kernel(
                "query_kernel", (q_dim, widths[0])
            )
            self.query_bias = self._add_bias("query_bias", widths[0])
            self.key_kernel = self._add_kernel("key_kernel", (k_dim, widths[1]))
            self.key_bias = self._add_bias("key_bias", widths[1])
            self.value_kernel = self._add_kernel(
                "value_kernel", (v_dim, widths[2])
            )
            self.value_bias = self._add_bias("value_bias", widths[2])
        out_width = math.prod(self._output_shape or (q_dim,))
        self.output_kernel = self._add_kernel(
            "output_kernel", (self.num_heads * self._head_value_dim, out_width)
        )
        self.output_bias = self._add_bias("output_bias", out_width)

    def _check_shapes(self, query_shape, value_shape, key_shape):
        names = f"query.shape={query_shape}, value.shape={value_shape}"
        if key_shape != value_shape:
            names += f", key.shape={key_shape}"
        if len(query_shape) < 3:
            raise ValueError(
                "`query` must have rank >= 3 ([batch, length, features]). "
                f"Received: {names}"
            )
        if len(value_shape) != len(query_shape) or len(key_shape) != len(
            value_shape
        ):
            raise ValueError(
                "`query`, `key` and `value` must have the same rank. "
                f"Received: {names}"
            )
        if tuple(key_shape[:-1]) != tuple(value_shape[:-1]) and not any(
            d is None for d in key_shape[:-1] + value_shape[:-1]
        ):
            raise ValueError(
                "All dimensions of `key` and `value` but the last must be "
                f"equal. Received: {names}"
            )
        for shape in (value_shape, key_shape):
            b1, b2 = query_shape[0], shape[0]
            if b1 is not None and b2 is not None and b1 != b2:
                raise ValueError(
                    "`query`, `key` and `value` must have the same batch "
                    f"size. Received: {names}"
                )
        for shape in (query_shape, value_shape, key_shape):
            if shape[-1] is None:
                raise ValueError(
                    "The feature (last) dimension of `query`, `key` and "
                    f"`value` must be known. Received: {names}"
                )
        rank = len(query_shape)
        axes = self._normalized_axes(rank)
        for axis in range(1, rank - 1):
            if axis in axes:
                continue
            a, b = query_shape[axis], value_shape[axis]
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f"Non-attention axis {axis} must have the same size in "
                    f"`query` and `value`. Received: {names}"
                )
        if self._fused is not None:
            built = (
                (self.qkv_kernel.shape[0],)
                if self._fused
                else (self.query_kernel.shape[0],)
            )
            if built[0] != query_shape[-1]:
                raise ValueError(
                    f"The layer was built for query features {built[0]}. "
                    f"Received: {names}"
                )

    def _normalized_axes(self, rank):
        if self.attention_axes is None:
            return tuple(range(1, rank - 1))
        axes = []
        for axis in self.attention_axes:
            positive = axis % rank if -rank <= axis < rank else None
            if positive is None or not 1 <= positive <= rank - 2:
                raise ValueError(
                    "`attention_axes` must index axes between the batch and "
                    f"the feature axis of rank-{rank} inputs. Received: "
                    f"attention_axes={self.attention_axes}"
                )
            axes.append(positive)
        return tuple(sorted(set(axes)))

    # === Projections ===

    def _weights(self, name):
        dtype = self.compute_dtype
        kernel = ops.cast(getattr(self, f"{name}_kernel"), dtype)
        bias = getattr(self, f"{name}_bias", None)
        return kernel, None if bias is None else ops.cast(bias, dtype)

    def _project(self, x, kernel, bias):
        y = ops.matmul(x, kernel)
        return y if bias is None else y + bias

    def _project_qkv(self, query, value, key, self_attention):
        """Projections q `[B, T, N*H]` (scaled), k `[B, S, K*H]`, v.

        Self-attention with the fused kernel is one matmul; otherwise the
        query and the keys/values are projected separately (with slices of
        the fused kernel when there is one).
        """
        if self._fused and self_attention:
            kernel, bias = self._weights("qkv")
            # The logit scale 1/sqrt(H), folded into the query columns.
            scale = ops.concatenate(
                [
                    ops.full((self._q_width,), self._scale, kernel.dtype),
                    ops.ones((self._k_width + self._v_width,), kernel.dtype),
                ]
            )
            qkv = self._project(
                query, kernel * scale, None if bias is None else bias * scale
            )
            return ops.split(
                qkv, [self._q_width, self._q_width + self._k_width], axis=-1
            )
        return (
            self._project_query(query),
            *self._project_key_value(value, key),
        )

    def _project_query(self, query):
        """The query projection `[B, T, N*H]`, scaled by `1/sqrt(H)`."""
        if self._fused:
            kernel, bias = self._weights("qkv")
            kernel = kernel[:, : self._q_width]
            bias = None if bias is None else bias[: self._q_width]
        else:
            kernel, bias = self._weights("query")
        return self._project(
            query,
            kernel * self._scale,
            None if bias is None else bias * self._scale,
        )

    def _project_key_value(self, value, key=None):
        """Keys `[B, S, K*H]` and values `[B, S, K*Hv]` (one matmul when
        `key` is None and the kernel is fused)."""
        if not self._fused:
            k = self._project(
                value if key is None else key, *self._weights("key")
            )
            return k, self._project(value, *self._weights("value"))
        kernel, bias = self._weights("qkv")
        lo, mid = self._q_width, self._q_width + self._k_width

        def part(start, stop):
            b = None if bias is None else bias[start:stop]
            return kernel[:, start:stop], b

        if key is None:
            kv = self._project(value, *part(lo, None))
            return tuple(ops.split(kv, [self._k_width], axis=-1))
        return (
            self._project(key, *part(lo, mid)),
            self._project(value, *part(mid, None)),
        )

    def _project_kv(self, value, key=None):
        """Keys and values `[B, S, K, H]`, `[B, S, K, Hv]` for the cache."""
        k, v = self._project_key_value(value, key)
        k = ops.reshape(k, (-1, ops.shape(k)[1], self._kv_heads, self.key_dim))
        v = ops.reshape(
            v, (-1, ops.shape(v)[1], self._kv_heads, self._head_value_dim)
        )
        return k, v

    # === Cache API ===

    def initialize_cache(self, batch_size, max_length, dtype=None):
        """Returns an all-zero key/value cache `[B, 2, max_length, K, H]`.

        Args:
            batch_size: int or scalar tensor.
            max_length: int, number of cache slots (maximum decoded length).
            dtype: cache dtype; defaults to the layer's compute dtype.
        """
        self._check_cacheable()
        return ops.zeros(
            (batch_size, 2, max_length, self._kv_heads, self.key_dim),
            dtype=dtype or self.compute_dtype,
        )

    def compute_key_value_cache(self, value, key=None):
        """Projects `value` (and `key`) once into a `[B, 2, S, K, H]` cache.

        For cross-attention in a decoder: call once on the encoder output,
        then pass the result as `cache=` (without `cache_update_index`) at
        every decoding step. The layer must be built.
        """
        self._check_cacheable()
        if not self.built:
            raise ValueError(
                "`compute_key_value_cache` needs a built layer; call it once "
                "(e.g. inside the model) first. Received: an unbuilt layer."
            )
        k, v = self._project_kv(value, key)
        return ops.stack([k, v], axis=1)

    def _check_cacheable(self):
        if self._head_value_dim != self.key_dim:
            raise ValueError(
                "The key/value cache stores keys and values in one tensor and "
                "needs `value_dim == key_dim`. Received: "
                f"key_dim={self.key_dim}, value_dim={self.value_dim}"
            )

    # === Attention paths ===

    def _dropout_active(self, training):
        return self.dropout > 0.0 and bool(training)

    def _use_backend_kernel(self, training, return_scores):
        if self.flash_attention is False or return_scores:
            return False
        if self._dropout_active(training):
            return False
        wanted = self.flash_attention
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
        if not self._flash_warned:
            self._flash_warned = True
            warnings.warn(
                f"{self.name}: flash attention requested but unavailable "
                f"({reason}); using this layer's own attention path "
                f"(attention_impl={self.attention_impl!r}).",
                stacklevel=3,
            )

    def _standard(self, q, kt, v, mask, training, return_scores):
        """Materialised attention. Returns context `[B, K, G, T, Hv]` and
        float32 weights `[B, K, G, T, S]` before dropout (or None)."""
        heads, groups = self._kv_heads, self._groups
        t_len, s_len = _dims(q, (3,))[0], _dims(kt, (3,))[0]
        rows = groups * t_len
        q_flat = ops.reshape(q, (-1, heads, rows, self.key_dim))
        if mask is not None:
            # mask: [B, T, S] -> [B, 1, 1, T, S]
            mask = ops.expand_dims(ops.expand_dims(mask, 1), 1)
        keep = None
        if self._dropout_active(training):
            noise = keras.random.uniform(
                (ops.shape(q)[0], heads, rows, s_len),
                seed=self._seed_generator,
            )
            keep = ops.cast(noise >= self.dropout, "float32") / (
                1.0 - self.dropout
            )
        context, weights = _dense_attention(
            q_flat,
            kt,
            v,
            mask=mask,
            keep=keep,
            groups=groups,
            return_weights=return_scores,
        )
        context = ops.reshape(
            context, (-1, heads, groups, t_len, self._head_value_dim)
        )
        if weights is not None:
            weights = ops.reshape(weights, (-1, heads, groups, t_len, s_len))
        return context, weights

    def _chunked(self, q, kt, v, masks, causal, offset):
        query_mask, value_mask, attention_mask = masks
        return blockwise_attention(
            q,
            kt,
            v,
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            is_causal=causal,
            causal_offset=offset,
            query_chunk_size=self.query_chunk_size,
            key_chunk_size=self.key_chunk_size,
            return_lse=True,
        )

    def _backend_kernel(self, q, k, v, mask, causal_only):
        """`keras.ops.dot_product_attention` on `[B, T, N, H]` tensors."""
        if mask is not None:
            mask = ops.expand_dims(mask, 1)  # [B, 1, T, S]
        try:
            return ops.dot_product_attention(
                q,
                k,
                v,
                mask=mask,
                scale=1.0,  # already folded into the query projection
                is_causal=causal_only,
                flash_attention=self.flash_attention
                or keras.config.is_flash_attention_enabled(),
            )
        except (
            ValueError,
            RuntimeError,
            ImportError,
            NotImplementedError,
        ) as e:
            if not self.flash_attention:
                raise
            self._warn_flash_fallback(str(e).splitlines()[0])
            return None

    # === Call ===

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
        cache=None,
        cache_update_index=None,
    ):
        if cache is None and cache_update_index is not None:
            raise ValueError(
                "`cache_update_index` needs a `cache`. Received: cache=None, "
                f"cache_update_index={cache_update_index}"
            )
        self_attention = value is query and (key is None or key is value)
        if key is value:
            key = None
        if cache is not None:
            return self._call_cached(
                query,
                value,
                key,
                query_mask,
                value_mask,
                attention_mask,
                return_attention_scores,
                use_causal_mask,
                training,
                cache,
                cache_update_index,
                self_attention,
            )
        self._check_shapes(
            tuple(query.shape),
            tuple(value.shape),
            tuple((value if key is None else key).shape),
        )
        rank = len(query.shape)
        q_in, v_in, k_in = query, value, key
        layout = None
        if rank > 3:
            layout = self._nd_layout(query, value)
            q_in = self._flatten(query, layout, "q")
            v_in = q_in if self_attention else self._flatten(value, layout, "k")
            k_in = None if key is None else self._flatten(key, layout, "k")
            query_mask, value_mask, attention_mask = self._flatten_masks(
                query, value, query_mask, value_mask, attention_mask, layout
            )
        q, k, v = self._project_qkv(q_in, v_in, k_in, self_attention)
        output, scores = self._attend(
            q,
            k,
            v,
            (query_mask, value_mask, attention_mask),
            use_causal_mask,
            0,
            training,
            return_attention_scores,
            q_in,
            v_in,
        )
        if layout is not None:
            output = self._unflatten_output(output, layout)
            if scores is not None:
                scores = self._unflatten_scores(scores, layout)
        elif self._output_shape and len(self._output_shape) > 1:
            output = ops.reshape(
                output, (-1, ops.shape(output)[1], *self._output_shape)
            )
        if return_attention_scores:
            return output, scores
        return output

    def _attend(
        self,
        q,
        k,
        v,
        masks,
        causal,
        offset,
        training,
        return_scores,
        q_ref,
        k_ref,
        key_slots=None,
    ):
        """Attention on projected `q [B,T,N*H]`, `k [B,S,K*H]`, `v`.

        Returns the output `[B, T, out_width]` and the scores
        `[B, N, T, S]` (or None). `q_ref`/`k_ref` are the 3-D inputs the
        masks are checked against; `key_slots` an optional `[1, S]` mask of
        usable cache slots.
        """
        heads, groups, hk, hv = (
            self._kv_heads,
            self._groups,
            self.key_dim,
            self._head_value_dim,
        )
        query_mask, value_mask, attention_mask = masks
        t_len = _dims(q, (1,))[0]
        s_len = _dims(k, (1,))[0]
        has_padding = any(m is not None for m in masks)
        valid_rows = None

        if self._use_backend_kernel(training, return_scores):
            mask = self._merged_mask(
                q_ref, k_ref, masks, causal, offset, key_slots
            )
            causal_only = causal and not has_padding and key_slots is None
            context = self._backend_kernel(
                ops.reshape(q, (-1, t_len, self.num_heads, hk)),
                ops.reshape(k, (-1, s_len, heads, hk)),
                ops.reshape(v, (-1, s_len, heads, hv)),
                None if causal_only else mask,
                causal_only,
            )
            if context is not None:
                context = ops.reshape(context, (-1, t_len, self.num_heads * hv))
                output = self._output_projection(context)
                if has_padding:
                    output = zero_fully_masked_queries(output, mask)
                return output, None

        # Heads first: q [B, K, G, T, H], kt [B, K, H, S], v [B, K, S, Hv]
        q = ops.transpose(
            ops.reshape(q, (-1, t_len, heads, groups, hk)), (0, 2, 3, 1, 4)
        )
        kt = ops.transpose(ops.reshape(k, (-1, s_len, heads, hk)), (0, 2, 3, 1))
        v = ops.transpose(ops.reshape(v, (-1, s_len, heads, hv)), (0, 2, 1, 3))
        if keras.backend.standardize_dtype(q.dtype) != "float32":
            # Mixed precision: the logits (and their gradients) in float32.
            q, kt = ops.cast(q, "float32"), ops.cast(kt, "float32")

        def standard():
            mask = self._merged_mask(
                q_ref, k_ref, masks, causal, offset, key_slots
            )
            context, weights = self._standard(
                q, kt, v, mask, training, return_scores
            )
            rows = None
            if has_padding:
                rows = ops.any(mask, axis=-1)  # [B, T]
            return context, weights, rows

        def chunked():
            self._check_masks(q_ref, k_ref, masks)
            vm = value_mask
            if key_slots is not None:
                vm = key_slots if vm is None else ops.logical_and(vm, key_slots)
            context, lse = self._chunked(
                q, kt, v, (query_mask, vm, attention_mask), causal, offset
            )
            rows = None
            if has_padding:
                rows = lse[:, 0, 0] < 0.5 * NO_KEY_LSE
            return context, None, rows

        impl = self._resolve_impl(t_len, s_len, training, return_scores)
        if impl == "standard":
            context, weights, valid_rows = standard()
        elif impl == "chunked":
            context, weights, valid_rows = chunked()
        else:  # "dynamic": decide at run time (TensorFlow, unknown lengths)
            threshold = self.chunk_threshold**2

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

        # context: [B, K, G, T, Hv] -> [B, T, N * Hv]
        context = ops.reshape(
            ops.transpose(context, (0, 3, 1, 2, 4)),
            (-1, t_len, self.num_heads * hv),
        )
        output = self._output_projection(context)
        if valid_rows is not None:
            output = output * ops.cast(
                ops.expand_dims(valid_rows, -1), output.dtype
            )
        scores = None
        if return_scores:
            scores = ops.reshape(
                ops.cast(weights, self.compute_dtype),
                (-1, self.num_heads, t_len, s_len),
            )
        return output, scores

    def _resolve_impl(self, t_len, s_len, training, return_scores):
        if return_scores or self._dropout_active(training):
            return "standard"
        if self.attention_impl != "auto":
            return self.attention_impl
        if isinstance(t_len, int) and isinstance(s_len, int):
            long = t_len * s_len >= self.chunk_threshold**2
            return "chunked" if long else "standard"
        return "dynamic"

    def _output_projection(self, context):
        kernel, bias = self._weights("output")
        return self._project(context, kernel, bias)

    def _check_masks(self, q_ref, k_ref, masks):
        q_shape, k_shape = tuple(q_ref.shape), tuple(k_ref.shape)
        src = f"query.shape={q_shape} and key.shape={k_shape}"
        batch, tq, tk = q_shape[0], q_shape[1], k_shape[1]
        for name, mask, expected in zip(
            ("query_mask", "value_mask", "attention_mask"),
            masks,
            ((batch, tq), (batch, tk), (batch, tq, tk)),
        ):
            if mask is not None:
                check_mask_shape(name, mask, expected, src)

    def _merged_mask(self, q_ref, k_ref, masks, causal, offset, key_slots):
        query_mask, value_mask, attention_mask = masks
        if key_slots is not None:
            slots = ops.expand_dims(key_slots, 1)  # [1, 1, S]
            attention_mask = (
                slots
                if attention_mask is None
                else ops.logical_and(ops.cast(attention_mask, "bool"), slots)
            )
        return merge_attention_masks(
            q_ref,
            k_ref,
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            use_causal_mask=causal,
            causal_offset=offset,
        )

    # === Cached decoding ===

    def _call_cached(
        self,
        query,
        value,
        key,
        query_mask,
        value_mask,
        attention_mask,
        return_scores,
        use_causal_mask,
        training,
        cache,
        index,
        self_attention,
    ):
        self._check_cacheable()
        if len(query.shape) != 3:
            raise ValueError(
                "The cache supports 3-D inputs [batch, length, features] "
                f"only. Received: query.shape={tuple(query.shape)}"
            )
        expected = (self._kv_heads, self.key_dim)
        if (
            len(cache.shape) != 5
            or cache.shape[1] != 2
            or (tuple(cache.shape[3:]) != expected)
        ):
            raise ValueError(
                "`cache` must have shape [batch, 2, max_length, "
                f"{expected[0]}, {expected[1]}]. "
                f"Received: cache.shape={tuple(cache.shape)}"
            )
        if not self.built:
            value_shape = None if value is None else tuple(value.shape)
            key_shape = None if key is None else tuple(key.shape)
            self.build(tuple(query.shape), value_shape, key_shape)
        if index is None:
            # Precomputed (cross-attention) keys/values: used as they are.
            q = self._project_query(query)
            keys, values = cache[:, 0], cache[:, 1]
            slots = None
            offset = 0
        else:
            if value is None:
                raise ValueError(
                    "A cache update needs the new tokens as `value`. "
                    "Received: value=None with cache_update_index="
                    f"{index}"
                )
            if self_attention:
                q, k, v = self._project_qkv(query, value, None, True)
            else:
                q = self._project_query(query)
                k, v = self._project_kv(value, key)
            t_new = _dims(value, (1,))[0]
            k = ops.reshape(k, (-1, t_new, self._kv_heads, self.key_dim))
            v = ops.reshape(v, (-1, t_new, self._kv_heads, self.key_dim))
            update = ops.cast(ops.stack([k, v], axis=1), cache.dtype)
            cache = ops.slice_update(cache, (0, 0, index, 0, 0), update)
            keys, values = cache[:, 0], cache[:, 1]
            s_max = _dims(cache, (2,))[0]
            # Slots not written yet (>= index + t_new) are never attended.
            slots = ops.expand_dims(
                ops.less(ops.arange(s_max), index + t_new), 0
            )
            offset = index
        s_len = _dims(keys, (1,))[0]
        k_flat = ops.reshape(
            ops.cast(keys, self.compute_dtype),
            (-1, s_len, self._kv_heads * self.key_dim),
        )
        v_flat = ops.reshape(
            ops.cast(values, self.compute_dtype),
            (-1, s_len, self._kv_heads * self.key_dim),
        )
        output, scores = self._attend(
            q,
            k_flat,
            v_flat,
            (query_mask, value_mask, attention_mask),
            use_causal_mask,
            offset,
            training,
            return_scores,
            query,
            keys,
            key_slots=slots,
        )
        if self._output_shape and len(self._output_shape) > 1:
            output = ops.reshape(
                output, (-1, ops.shape(output)[1], *self._output_shape)
            )
        if return_scores:
            return output, scores, cache
        return output, cache

    # === N-D inputs: flatten to [B', T, D] ===

    def _nd_layout(self, query, value):
        rank = len(query.shape)
        axes = self._normalized_axes(rank)
        others = tuple(a for a in range(1, rank - 1) if a not in axes)
        return {
            "rank": rank,
            "axes": axes,
            "others": others,
            "perm": (0, *others, *axes, rank - 1),
            "q_sizes": _dims(query, axes),
            "k_sizes": _dims(value, axes),
            "other_sizes": _dims(query, others),
        }

    def _flatten(self, x, layout, which):
        """`[B, ..., D]` -> `[B * others, prod(attention axes), D]`."""
        sizes = layout["q_sizes"] if which == "q" else layout["k_sizes"]
        x = ops.transpose(x, layout["perm"])
        return ops.reshape(x, (-1, _prod(sizes), x.shape[-1]))

    def _flatten_masks(self, query, value, qm, vm, am, layout):
        q_shape, v_shape = tuple(query.shape), tuple(value.shape)
        src = f"query.shape={q_shape} and value.shape={v_shape}"
        perm = layout["perm"][:-1]
        out = []
        if qm is not None:
            check_mask_shape("query_mask", qm, q_shape[:-1], src)
            qm = ops.transpose(ops.cast(qm, "bool"), perm)
            qm = ops.reshape(qm, (-1, _prod(layout["q_sizes"])))
        out.append(qm)
        if vm is not None:
            check_mask_shape("value_mask", vm, v_shape[:-1], src)
            vm = ops.transpose(ops.cast(vm, "bool"), perm)
            vm = ops.reshape(vm, (-1, _prod(layout["k_sizes"])))
        out.append(vm)
        if am is not None:
            others = tuple(q_shape[a] for a in layout["others"])
            expected = (
                q_shape[0],
                *others,
                *(q_shape[a] for a in layout["axes"]),
                *(v_shape[a] for a in layout["axes"]),
            )
            check_mask_shape("attention_mask", am, expected, src)
            am = ops.broadcast_to(
                ops.cast(am, "bool"),
                (
                    ops.shape(query)[0],
                    *layout["other_sizes"],
                    *layout["q_sizes"],
                    *layout["k_sizes"],
                ),
            )
            am = ops.reshape(
                am, (-1, _prod(layout["q_sizes"]), _prod(layout["k_sizes"]))
            )
        out.append(am)
        return tuple(out)

    def _unflatten_output(self, output, layout):
        rank = layout["rank"]
        trailing = self._output_shape or (output.shape[-1],)
        output = ops.reshape(
            output,
            (-1, *layout["other_sizes"], *layout["q_sizes"], *trailing),
        )
        # Undo the transpose of the non-feature axes.
        inverse = [0] * (rank - 1)
        for position, axis in enumerate(layout["perm"][:-1]):
            inverse[axis] = position
        extra = tuple(range(rank - 1, rank - 1 + len(trailing)))
        return ops.transpose(output, (*inverse, *extra))

    def _unflatten_scores(self, scores, layout):
        return ops.reshape(
            scores,
            (
                -1,
                *layout["other_sizes"],
                self.num_heads,
                *layout["q_sizes"],
                *layout["k_sizes"],
            ),
        )

    # === Shapes and config ===

    def compute_output_shape(
        self, query_shape, value_shape=None, key_shape=None
    ):
        query_shape = tuple(query_shape)
        trailing = self._output_shape or (query_shape[-1],)
        return query_shape[:-1] + tuple(trailing)

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
        cache=None,
        cache_update_index=None,
    ):
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape), dtype=self.compute_dtype
        )
        outputs = [output]
        if return_attention_scores:
            q_shape = tuple(query.shape)
            if cache is not None:
                k_axes_sizes = (cache.shape[2],)
                scores_shape = (
                    q_shape[0],
                    self.num_heads,
                    q_shape[1],
                    *k_axes_sizes,
                )
            else:
                rank = len(q_shape)
                axes = self._normalized_axes(rank)
                others = [a for a in range(1, rank - 1) if a not in axes]
                v_shape = tuple(value.shape)
                scores_shape = (
                    q_shape[0],
                    *(q_shape[a] for a in others),
                    self.num_heads,
                    *(q_shape[a] for a in axes),
                    *(v_shape[a] for a in axes),
                )
            outputs.append(
                keras.KerasTensor(scores_shape, dtype=self.compute_dtype)
            )
        if cache is not None:
            outputs.append(keras.KerasTensor(cache.shape, dtype=cache.dtype))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def get_config(self):
        config = {
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self._output_shape,
            "attention_axes": self.attention_axes,
            "num_key_value_heads": self.num_key_value_heads,
            "flash_attention": self.flash_attention,
            "attention_impl": self.attention_impl,
            "query_chunk_size": self.query_chunk_size,
            "key_chunk_size": self.key_chunk_size,
            "chunk_threshold": self.chunk_threshold,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer
            ),
            "bias_initializer": keras.initializers.serialize(
                self.bias_initializer
            ),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer
            ),
            "bias_regularizer": keras.regularizers.serialize(
                self.bias_regularizer
            ),
            "activity_regularizer": keras.regularizers.serialize(
                self.activity_regularizer
            ),
            "kernel_constraint": keras.constraints.serialize(
                self.kernel_constraint
            ),
            "bias_constraint": keras.constraints.serialize(
                self.bias_constraint
            ),
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
