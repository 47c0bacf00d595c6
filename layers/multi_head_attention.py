"""Multi-head attention (Vaswani et al. 2017) with fused QKV, GQA and a cache.

Beyond `keras.layers.MultiHeadAttention`: one fused QKV projection for
self-attention, grouped-query attention (Ainslie et al. 2023), a static-shape
incremental-decoding cache, masks honoured in every code path, attention
scores returnable with dropout, flash attention passed to the backend where
it exists (Dao et al. 2022) with a clean fallback on TensorFlow, and a
memory-efficient chunked path for long sequences (Rabe & Staats 2021).

The layer is assembled from one module per concern: the projection weights
(`layers.attention_projections`), the decoding cache
(`layers.attention_cache`), the N-D axis layout (`layers.attention_layout`),
the masks (`layers.masking.AttentionMasks`) and the attention computations
(`layers.attention_kernels`). `_compute_attention` is the override point of
a variant (talking heads, relative positions): it changes the attention of
projected heads without copying `call`.
"""

import math

import keras
from keras import ops

from layers import keras_conversion
from layers.attention_cache import KeyValueCacheMixin
from layers.attention_kernels import AttentionKernel
from layers.attention_layout import AxisLayout
from layers.attention_layout import align_attention_mask
from layers.attention_layout import attention_axes_of
from layers.attention_layout import dim_sizes
from layers.attention_projections import ProjectionsMixin
from layers.chunked_attention import DEFAULT_KEY_CHUNK_SIZE
from layers.chunked_attention import DEFAULT_QUERY_CHUNK_SIZE
from layers.masking import AttentionMasks
from layers.masking import valid_query_rows
from layers.validation import check_bool
from layers.validation import check_choice
from layers.validation import check_positive_int
from layers.validation import check_positive_number
from layers.validation import check_rate
from layers.validation import check_seed

ATTENTION_IMPLS = ("auto", "standard", "chunked")


@keras.saving.register_keras_serializable(package="attention_zoo")
class MultiHeadAttention(
    ProjectionsMixin, KeyValueCacheMixin, keras.layers.Layer
):
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
    - **Everything Keras 3.15's layer has**: `key_mask`, `[T, S]` and
      per-head `[B, N, T, S]` attention masks, `use_gate`,
      `sliding_window`, `enable_lora(rank)`, `quantize("int8")` (with the
      `"int8_from_*"` dtype policies), and `from_keras` / `to_keras` to move
      weights between the two layers.

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
        sliding_window: optional int `W`: query `i` attends only to keys
            `j` with `|i - j| < W` (a symmetric band, as in Keras); with
            `use_causal_mask=True`, the causal sliding window of
            Mistral-style decoders. Honoured with the cache (positions
            count from the start of the cache).
        use_gate: gated attention (Qiu et al. 2025, "Gated Attention for
            Large Language Models", https://arxiv.org/abs/2505.06708, as in
            Keras): each head's output is multiplied by
            `sigmoid(query @ W_gate + b_gate)` before the output projection.
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
        lora_rank: LoRA rank of a layer saved with `enable_lora` (see
            `enable_lora`); None for none.
        lora_alpha: LoRA scale numerator (defaults to `lora_rank`).
        **kwargs: base layer arguments (`name`, `dtype`, ...); an
            `"int8_from_float32"`-style dtype policy builds the layer
            quantised (see `quantize`).

    Call arguments:
        query: `[B, Tq, Dq]` (or `[B, *axes, Dq]`) query tensor.
        value: `[B, Tk, Dv]` value tensor.
        key: optional `[B, Tk, Dk]` key tensor; defaults to `value`.
        query_mask: optional boolean `[B, Tq]` (`query.shape[:-1]`).
        value_mask: optional boolean `[B, Tk]` (`value.shape[:-1]`).
        key_mask: optional boolean `[B, Tk]` (`key.shape[:-1]`), combined
            with `value_mask` (both apply). Like the query and value masks,
            it defaults to the input's Keras mask (e.g. from
            `Embedding(mask_zero=True)`).
        attention_mask: optional boolean `[B, Tq, Tk]`, `[Tq, Tk]` or per
            head `[B, N, Tq, Tk]`; size-1 axes broadcast and missing axes
            are inserted at the head position, as in Keras. For N-D inputs
            `[B, *other axes, (N,) *query attention axes, *key attention
            axes]`.
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
        sliding_window=None,
        use_gate=False,
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
        lora_rank=None,
        lora_alpha=None,
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
        check_positive_int("sliding_window", sliding_window, allow_none=True)
        check_bool("use_gate", use_gate)
        check_positive_int("lora_rank", lora_rank, allow_none=True)
        if lora_alpha is not None:
            check_positive_number("lora_alpha", lora_alpha)
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
        self.sliding_window = sliding_window
        self.use_gate = use_gate
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
        self.lora_rank = lora_rank
        self.lora_alpha = lora_rank if lora_alpha is None else lora_alpha
        self._lora_initializers = ("he_uniform", "zeros")

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
        self._projection_names = ()
        self._kernel = AttentionKernel(self, self._seed_generator)

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
        out_width = math.prod(self._output_shape or (q_dim,))
        self._build_projections(q_dim, k_dim, v_dim, out_width)

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
        axes = attention_axes_of(self.attention_axes, rank)
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

    # === Call ===

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
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
        if key_mask is not None:
            # As in Keras: the key's and the value's masks both apply.
            key_mask = ops.cast(key_mask, "bool")
            value_mask = (
                key_mask
                if value_mask is None
                else ops.logical_and(ops.cast(value_mask, "bool"), key_mask)
            )
        if attention_mask is not None:
            attention_mask = align_attention_mask(
                attention_mask,
                len(query.shape),
                self.attention_axes,
                self.num_heads,
            )
        masks = AttentionMasks(
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            sliding_window=self.sliding_window,
        )
        if cache is not None:
            return self._call_cached(
                query,
                value,
                key,
                masks,
                cache,
                cache_update_index,
                training=training,
                return_scores=return_attention_scores,
            )
        self._check_shapes(
            tuple(query.shape),
            tuple(value.shape),
            tuple((value if key is None else key).shape),
        )
        q_in, v_in, k_in = query, value, key
        layout = None
        if len(query.shape) > 3:
            layout = AxisLayout.of(query, value, self.attention_axes)
            q_in = layout.flatten_query(query)
            v_in = q_in if self_attention else layout.flatten_key(value)
            k_in = None if key is None else layout.flatten_key(key)
            masks = layout.flatten_masks(query, value, masks, self.num_heads)
        q, k, v = self._project_qkv(q_in, v_in, k_in, self_attention)
        gate = self._gate(q_in) if self.use_gate else None
        output, scores = self._attention_output(
            q, k, v, masks, training, return_attention_scores, gate
        )
        if layout is not None:
            trailing = self._output_shape or (output.shape[-1],)
            output = layout.unflatten_output(output, trailing)
            if scores is not None:
                scores = layout.unflatten_scores(scores, self.num_heads)
        elif self._output_shape and len(self._output_shape) > 1:
            output = ops.reshape(
                output, (-1, ops.shape(output)[1], *self._output_shape)
            )
        if return_attention_scores:
            return output, scores
        return output

    def _attention_output(
        self, q, k, v, masks, training, return_scores, gate=None
    ):
        """Attention and output projection of projected `q [B, T, N*H]`,
        `k [B, S, K*H]`, `v [B, S, K*Hv]` (and `gate [B, T, N*Hv]`).

        Returns the output `[B, T, out_width]` and the scores `[B, N, T, S]`
        (or None). A query without any valid key gets an all-zero output
        (the output bias is not added to it).
        """
        t_len, s_len = dim_sizes(q, (1,))[0], dim_sizes(k, (1,))[0]
        hv = self._head_value_dim
        query = ops.reshape(q, (-1, t_len, self.num_heads, self.key_dim))
        key = ops.reshape(k, (-1, s_len, self._kv_heads, self.key_dim))
        value = ops.reshape(v, (-1, s_len, self._kv_heads, hv))
        if (
            type(self)._compute_attention
            is MultiHeadAttention._compute_attention
        ):
            # The kernel also reports the queries without keys, cheaply
            # (without materialising the mask in the chunked path).
            context, scores, valid_rows = self._kernel(
                query, key, value, masks, training, return_scores
            )
        else:
            context, scores = self._compute_attention(
                query, key, value, masks, training, return_scores
            )
            valid_rows = None
            if masks.has_padding:
                valid_rows = valid_query_rows(masks.merged(query, key))
        context = ops.reshape(context, (-1, t_len, self.num_heads * hv))
        if gate is not None:
            context = context * gate
        output = self._output_projection(context)
        if valid_rows is not None:
            output = output * ops.cast(
                ops.expand_dims(valid_rows, -1), output.dtype
            )
        return output, scores

    def _compute_attention(
        self,
        query,
        key,
        value,
        masks,
        training=None,
        return_attention_scores=False,
    ):
        """Attention of projected heads: the override point of a variant.

        A subclass (talking heads, relative position biases, ...) overrides
        this method to change how the projected heads attend, and keeps
        everything else (projections, masks, N-D inputs, output projection,
        serialisation) from this layer, as with the method of the same name
        in `keras.layers.MultiHeadAttention`.

        Args:
            query: `[B, T, N, H]` projected queries, already multiplied by
                the logit scale `1 / sqrt(key_dim)`.
            key: `[B, S, K, H]` projected keys (`K = num_key_value_heads`;
                query head `n` uses key head `n // (N // K)`).
            value: `[B, S, K, Hv]` projected values.
            masks: a `layers.masking.AttentionMasks`;
                `masks.merged(query, key)` is the boolean mask broadcastable
                to `[B, T, S]` (or None).
            training: whether dropout is active.
            return_attention_scores: whether to return the weights.

        Returns:
            `(context, scores)`: the context `[B, T, N, Hv]` and the weights
            `[B, N, T, S]` (or None).
        """
        context, scores, _ = self._kernel(
            query, key, value, masks, training, return_attention_scores
        )
        return context, scores

    # === Keras interoperability ===

    @classmethod
    def from_keras(cls, layer, **overrides):
        """This layer, built with the configuration and weights of a built
        `keras.layers.MultiHeadAttention`.

        Outputs and attention scores equal the Keras layer's (to float
        rounding); `overrides` set or change constructor arguments (e.g.
        `num_key_value_heads` is not one of them: Keras has none).

        Example:

        >>> import keras, numpy as np
        >>> x = np.random.rand(2, 5, 8).astype("float32")
        >>> theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
        >>> _ = theirs(x, x)
        >>> ours = MultiHeadAttention.from_keras(theirs)
        >>> bool(np.allclose(ours(x, x), theirs(x, x), atol=1e-5))
        True
        """
        return keras_conversion.from_keras(cls, layer, **overrides)

    def to_keras(self):
        """A built `keras.layers.MultiHeadAttention` with this layer's
        configuration and weights (ordinary multi-head attention only:
        `num_key_value_heads` unset, not quantised)."""
        return keras_conversion.to_keras(self)

    # === Shapes and config ===

    def compute_output_shape(
        self, query_shape, value_shape=None, key_shape=None
    ):
        query_shape = tuple(query_shape)
        if value_shape is not None:
            # The checks of `call`, on shapes.
            value_shape = tuple(value_shape)
            key_shape = value_shape if key_shape is None else tuple(key_shape)
            self._check_shapes(query_shape, value_shape, key_shape)
        trailing = self._output_shape or (query_shape[-1],)
        return query_shape[:-1] + tuple(trailing)

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        use_causal_mask=False,
        training=None,
        cache=None,
        cache_update_index=None,
    ):
        output = keras.KerasTensor(
            self.compute_output_shape(
                query.shape,
                None if cache is not None else value.shape,
                None if key is None or cache is not None else key.shape,
            ),
            dtype=self.compute_dtype,
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
                scores_shape = AxisLayout.scores_shape(
                    q_shape,
                    tuple(value.shape),
                    self.num_heads,
                    self.attention_axes,
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
            "sliding_window": self.sliding_window,
            "use_gate": self.use_gate,
        }
        if self.lora_rank:
            config.update(lora_rank=self.lora_rank, lora_alpha=self.lora_alpha)
        return {**super().get_config(), **config}
