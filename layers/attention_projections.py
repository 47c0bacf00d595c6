"""The query/key/value/output projection weights of `MultiHeadAttention`.

When query, key and value have the same feature size `D`, one fused kernel
`qkv_kernel [D, N*H + K*H + K*Hv]` holds the three input projections, so
self-attention projects with one matmul and cross-attention with slices of
the same kernel; otherwise `query_kernel`, `key_kernel` and `value_kernel`
are separate. The logit scale `1 / sqrt(H)` is folded into the query
projection. `output_kernel [N*Hv, out]` maps the heads back.
"""

from keras import ops

from layers.initializers import clone_initializer


class ProjectionsMixin:
    """Weights and projections of `MultiHeadAttention` (a mixin).

    Uses the layer's `num_heads`, `key_dim`, `use_bias`, initializers,
    regularizers and constraints, and the derived widths `_q_width`,
    `_k_width`, `_v_width` (`N*H`, `K*H`, `K*Hv`).
    """

    def _block_initializer(self, widths):
        """Initialises each projection block of a fused kernel separately."""
        initializers = [
            clone_initializer(self.kernel_initializer) for _ in widths
        ]

        def init(shape, dtype=None):
            return ops.concatenate(
                [
                    initializer((shape[0], w), dtype=dtype)
                    for initializer, w in zip(initializers, widths)
                ],
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
                else clone_initializer(self.kernel_initializer)
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
            initializer=clone_initializer(self.bias_initializer),
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def _build_projections(self, q_dim, k_dim, v_dim, out_width):
        """Creates the projection weights for the given feature sizes."""
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
        self.output_kernel = self._add_kernel(
            "output_kernel", (self.num_heads * self._head_value_dim, out_width)
        )
        self.output_bias = self._add_bias("output_bias", out_width)

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

    def _output_projection(self, context):
        kernel, bias = self._weights("output")
        return self._project(context, kernel, bias)
