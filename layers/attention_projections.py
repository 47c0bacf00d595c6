"""The projection weights of `MultiHeadAttention`: layout, LoRA and int8.

When query, key and value have the same feature size `D`, one fused kernel
`qkv_kernel [D, N*H + K*H + K*Hv]` holds the three input projections, so
self-attention projects with one matmul and cross-attention with slices of
the same kernel; otherwise `query_kernel`, `key_kernel` and `value_kernel`
are separate. `gate_kernel [D, N*Hv]` (with `use_gate`) and `output_kernel
[N*Hv, out]` complete the set. The logit scale `1 / sqrt(H)` is applied to
the query projection.

Like Keras's `Dense`/`EinsumDense`, the projections support LoRA
(Hu et al. 2021, https://arxiv.org/abs/2106.09685: frozen kernels plus a
trainable low-rank update `(alpha / rank) * A @ B` per projection) and int8
weight quantisation (per-column abs-max int8 kernels, inputs quantised per
token at call time, `keras.quantizers.abs_max_quantize`), with the
`"int8_from_<policy>"` dtype policy Keras uses for quantised layers.
"""

import collections

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.validation import check_positive_int

# The logical projections that get their own LoRA adapter.
LORA_PROJECTIONS = ("query", "key", "value", "gate", "output")


def _int8_matmul(x, kernel, kernel_scale, dtype):
    """`x @ dequantised(kernel)` computed on int8 inputs and kernel.

    The inputs are quantised per row (abs-max, as Keras's `EinsumDense`
    does); the gradient reaches `x` through the dequantised kernel.
    """

    @ops.custom_gradient
    def matmul(x, kernel, kernel_scale):
        x_int, x_scale = keras.quantizers.abs_max_quantize(x, axis=-1)
        y = ops.cast(ops.matmul(x_int, kernel), dtype)
        y = y / (ops.cast(x_scale, dtype) * ops.cast(kernel_scale, dtype))

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            float_kernel = ops.cast(kernel, dtype) / ops.cast(
                kernel_scale, dtype
            )
            return ops.matmul(upstream, ops.transpose(float_kernel)), None, None

        return y, grad

    return matmul(x, kernel, kernel_scale)


class Projection(
    collections.namedtuple("Projection", "kernel bias scale lora")
):
    """One projection's weights, ready to apply.

    Attributes:
        kernel: `[in, out]`, float (LoRA update merged in) or int8.
        bias: `[out]` or None.
        scale: the int8 kernel's per-column scale `[out]`, or None (float).
        lora: with an int8 kernel, the float LoRA update `[in, out]` (added
            on a float path, as Keras does), else None.
    """

    def columns(self, start, stop=None):
        """The projection restricted to output columns `start:stop`."""

        def cut(x, vector=False):
            if x is None:
                return None
            return x[start:stop] if vector else x[:, start:stop]

        return Projection(
            cut(self.kernel),
            cut(self.bias, True),
            cut(self.scale, True),
            cut(self.lora),
        )

    def apply(self, x, multiplier=None, dtype=None):
        """`x @ kernel + bias`, times `multiplier` (a scalar or `[out]`)."""
        if self.scale is None:
            kernel, bias = self.kernel, self.bias
            if multiplier is not None:
                # Folded into the (small) kernel instead of the outputs.
                kernel = kernel * multiplier
                bias = None if bias is None else bias * multiplier
            y = ops.matmul(x, kernel)
            return y if bias is None else y + bias
        y = _int8_matmul(x, self.kernel, self.scale, dtype)
        if self.lora is not None:
            y = y + ops.matmul(x, self.lora)
        if self.bias is not None:
            y = y + self.bias
        return y if multiplier is None else y * multiplier


class ProjectionsMixin:
    """Weights and projections of `MultiHeadAttention` (a mixin).

    Uses the layer's `num_heads`, `key_dim`, `use_bias`, `use_gate`,
    initializers, regularizers and constraints, and the derived widths
    `_q_width`, `_k_width`, `_v_width` (`N*H`, `K*H`, `K*Hv`).
    """

    # === Building ===

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
        if self.quantization_mode == "int8":
            self._add_int8_kernel(name, shape)
            self._is_quantized = True
            return
        kernel = self.add_weight(
            name=f"{name}_kernel",
            shape=shape,
            initializer=(
                self._block_initializer(widths)
                if widths
                else clone_initializer(self.kernel_initializer)
            ),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        setattr(self, f"{name}_kernel", kernel)

    def _add_int8_kernel(self, name, shape):
        setattr(
            self,
            f"{name}_kernel",
            self.add_weight(
                name=f"{name}_kernel",
                shape=shape,
                initializer="zeros",
                dtype="int8",
                trainable=False,
            ),
        )
        setattr(
            self,
            f"{name}_kernel_scale",
            self.add_weight(
                name=f"{name}_kernel_scale",
                shape=(shape[-1],),
                initializer="ones",
                trainable=False,
            ),
        )

    def _add_bias(self, name, size):
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias",
                shape=(size,),
                initializer=clone_initializer(self.bias_initializer),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        setattr(self, f"{name}_bias", bias)

    def _projection_shapes(self, q_dim, k_dim, v_dim, out_width):
        """`{name: (kernel shape, fused block widths)}` in build order."""
        widths = (self._q_width, self._k_width, self._v_width)
        heads_width = self.num_heads * self._head_value_dim
        shapes = {}
        if self._fused:
            shapes["qkv"] = ((q_dim, sum(widths)), widths)
        else:
            shapes["query"] = ((q_dim, widths[0]), None)
            shapes["key"] = ((k_dim, widths[1]), None)
            shapes["value"] = ((v_dim, widths[2]), None)
        if self.use_gate:
            shapes["gate"] = ((q_dim, heads_width), None)
        shapes["output"] = ((heads_width, out_width), None)
        return shapes

    def _build_projections(self, q_dim, k_dim, v_dim, out_width):
        """Creates the projection weights for the given feature sizes."""
        self._fused = q_dim == k_dim == v_dim
        shapes = self._projection_shapes(q_dim, k_dim, v_dim, out_width)
        self._projection_names = tuple(shapes)
        for name, (shape, widths) in shapes.items():
            self._add_kernel(name, shape, widths)
            self._add_bias(name, shape[1])
        if self.lora_rank:
            self._add_lora_weights(self.lora_rank)

    # === LoRA ===

    def _lora_shapes(self):
        """`{logical projection: (A shape, B shape)}` of the LoRA adapters.

        As Keras's `EinsumDense` adapters of `keras.layers.MultiHeadAttention`
        (`A` has the kernel's shape but a rank for its last axis): the
        input projections get `A [in, heads, rank]` and `B [rank, head
        size]`, the output projection `A [N*Hv, rank]`, `B [rank, out]`.
        """
        rank = self.lora_rank
        hk, hv = self.key_dim, self._head_value_dim
        shapes = {}
        for name in self._projection_names:
            rows = getattr(self, f"{name}_kernel").shape[0]
            if name == "output":
                columns = getattr(self, f"{name}_kernel").shape[1]
                shapes[name] = ((rows, rank), (rank, columns))
                continue
            heads = {
                "query": (self.num_heads, hk),
                "key": (self._kv_heads, hk),
                "value": (self._kv_heads, hv),
                "gate": (self.num_heads, hv),
            }
            parts = ("query", "key", "value") if name == "qkv" else (name,)
            for part in parts:
                count, size = heads[part]
                shapes[part] = ((rows, count, rank), (rank, size))
        return shapes

    def _add_lora_weights(self, rank):
        for name, shapes in self._lora_shapes().items():
            for part, shape, initializer in zip(
                ("a", "b"), shapes, self._lora_initializers
            ):
                # float32 adapters, as in Keras (no underflow when
                # fine-tuning under mixed precision).
                weight = self.add_weight(
                    name=f"{name}_lora_kernel_{part}",
                    shape=shape,
                    initializer=keras.initializers.get(initializer),
                    dtype="float32",
                    regularizer=self.kernel_regularizer,
                )
                setattr(self, f"{name}_lora_kernel_{part}", weight)
        for name in self._projection_names:
            getattr(self, f"{name}_kernel").trainable = False

    def enable_lora(
        self,
        rank,
        lora_alpha=None,
        a_initializer="he_uniform",
        b_initializer="zeros",
    ):
        """Freezes the kernels and adds a trainable LoRA update to each.

        As `keras.layers.Dense.enable_lora`: every projection (query, key,
        value, gate, output) gets `A [in, rank]`, `B [rank, out]` (float32,
        `B` starting at zero) and computes with
        `kernel + (lora_alpha / rank) * A @ B`. `lora_rank` and
        `lora_alpha` are saved in the config, so a reloaded layer has the
        adapters too.

        Args:
            rank: the rank of the updates.
            lora_alpha: the update's scale numerator; defaults to `rank`.
            a_initializer: initializer of the `A` matrices.
            b_initializer: initializer of the `B` matrices.
        """
        check_positive_int("rank", rank)
        if self.kernel_constraint is not None:
            raise ValueError(
                "LoRA is incompatible with kernel constraints. Received: "
                f"kernel_constraint={self.kernel_constraint!r}"
            )
        if not self.built:
            raise ValueError(
                "Cannot enable LoRA on a layer that is not built yet (call it "
                f"once first). Received: an unbuilt layer {self.name!r}"
            )
        if self.lora_rank:
            raise ValueError(
                "LoRA is already enabled (it can be enabled once). "
                f"Received: rank={rank} with lora_rank={self.lora_rank}"
            )
        self.lora_rank = rank
        self.lora_alpha = rank if lora_alpha is None else lora_alpha
        self._lora_initializers = (a_initializer, b_initializer)
        # New state after `build`: unlocked as Keras's own `enable_lora`
        # does for its layers.
        self._tracker.unlock()
        try:
            self._add_lora_weights(rank)
        finally:
            self._tracker.lock()

    def _lora_update(self, name):
        """The scaled LoRA update `[in, out]` of physical projection `name`."""
        if not self.lora_rank:
            return None
        parts = ("query", "key", "value") if name == "qkv" else (name,)
        factor = self.lora_alpha / self.lora_rank
        updates = []
        for part in parts:
            a = getattr(self, f"{part}_lora_kernel_a")
            update = ops.matmul(a, getattr(self, f"{part}_lora_kernel_b"))
            # [in, heads, size] -> [in, heads * size]
            updates.append(factor * ops.reshape(update, (a.shape[0], -1)))
        return (
            updates[0]
            if len(updates) == 1
            else ops.concatenate(updates, axis=-1)
        )

    # === int8 ===

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantises the projection kernels to int8 (`mode="int8"`).

        As Keras's `Dense.quantize("int8")`: each kernel becomes an int8
        kernel with a per-column float scale (abs-max), inputs are
        quantised per token at call time, and the layer's dtype policy
        becomes `"int8_from_<policy>"`, so a saved model reloads quantised.
        `keras.Model.quantize("int8")` calls this for every such layer.
        """
        if mode != "int8":
            raise NotImplementedError(
                f"{type(self).__name__} supports int8 quantisation only. "
                f"Received: mode={mode!r}"
            )
        for name in self._projection_names:
            kernel = getattr(self, f"{name}_kernel")
            values, scale = keras.quantizers.abs_max_quantize(
                kernel, axis=0, to_numpy=True
            )
            delattr(self, f"{name}_kernel")
            self._add_int8_kernel(name, tuple(kernel.shape))
            getattr(self, f"{name}_kernel").assign(values)
            getattr(self, f"{name}_kernel_scale").assign(ops.squeeze(scale, 0))
        # Keras's marker of a quantised layer (read by its `quantize` checks
        # and its `dtype_policy` setter).
        self._is_quantized = True
        self.dtype_policy = keras.dtype_policies.get(
            f"int8_from_{self.dtype_policy.name}"
        )

    def quantized_call(self, *args, **kwargs):
        # One call for every mode: the projections read the mode.
        return self.call(*args, **kwargs)

    # === Applying ===

    def _weights(self, name):
        """The `Projection` of physical projection `name` in the compute
        dtype (`"qkv"`, `"query"`, `"key"`, `"value"`, `"gate"`,
        `"output"`)."""
        dtype = self.compute_dtype
        kernel = getattr(self, f"{name}_kernel")
        bias = getattr(self, f"{name}_bias", None)
        bias = None if bias is None else ops.cast(bias, dtype)
        update = self._lora_update(name)
        if self.quantization_mode == "int8":
            scale = getattr(self, f"{name}_kernel_scale")
            lora = None if update is None else ops.cast(update, dtype)
            return Projection(kernel, bias, scale, lora)
        kernel = ops.cast(kernel, dtype)
        if update is not None:
            kernel = kernel + ops.cast(update, dtype)
        return Projection(kernel, bias, None, None)

    def _apply(self, x, projection, multiplier=None):
        return projection.apply(x, multiplier, dtype=self.compute_dtype)

    def _project_qkv(self, query, value, key, self_attention):
        """Projections q `[B, T, N*H]` (scaled), k `[B, S, K*H]`, v.

        Self-attention with the fused kernel is one matmul; otherwise the
        query and the keys/values are projected separately (with slices of
        the fused kernel when there is one).
        """
        if self._fused and self_attention:
            projection = self._weights("qkv")
            # The logit scale 1/sqrt(H) on the query columns only.
            dtype = self.compute_dtype
            scale = ops.concatenate(
                [
                    ops.full((self._q_width,), self._scale, dtype),
                    ops.ones((self._k_width + self._v_width,), dtype),
                ]
            )
            qkv = self._apply(query, projection, scale)
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
            projection = self._weights("qkv").columns(0, self._q_width)
        else:
            projection = self._weights("query")
        return self._apply(query, projection, self._scale)

    def _project_key_value(self, value, key=None):
        """Keys `[B, S, K*H]` and values `[B, S, K*Hv]` (one matmul when
        `key` is None and the kernel is fused)."""
        if not self._fused:
            key = value if key is None else key
            return (
                self._apply(key, self._weights("key")),
                self._apply(value, self._weights("value")),
            )
        fused = self._weights("qkv")
        lo, mid = self._q_width, self._q_width + self._k_width
        if key is None:
            kv = self._apply(value, fused.columns(lo))
            return tuple(ops.split(kv, [self._k_width], axis=-1))
        return (
            self._apply(key, fused.columns(lo, mid)),
            self._apply(value, fused.columns(mid)),
        )

    def _project_kv(self, value, key=None):
        """Keys and values `[B, S, K, H]`, `[B, S, K, Hv]` for the cache."""
        k, v = self._project_key_value(value, key)
        k = ops.reshape(k, (-1, ops.shape(k)[1], self._kv_heads, self.key_dim))
        v = ops.reshape(
            v, (-1, ops.shape(v)[1], self._kv_heads, self._head_value_dim)
        )
        return k, v

    def _gate(self, query):
        """The sigmoid gate `[B, T, N*Hv]` of the heads (`use_gate`)."""
        return ops.sigmoid(self._apply(query, self._weights("gate")))

    def _output_projection(self, context):
        return self._apply(context, self._weights("output"))

    # === Reading and writing the weights as float arrays ===

    def projection_weights(self):
        """The effective float weights, `{name: (kernel, bias)}` as NumPy.

        Names are `"query"`, `"key"`, `"value"`, `"output"` (and `"gate"`);
        kernels are `[in, out]` with the heads' columns in order, LoRA
        updates merged and int8 kernels dequantised.
        """
        out = {}
        for name in self._projection_names:
            projection = self._weights(name)
            kernel = projection.kernel
            if projection.scale is not None:
                kernel = ops.cast(kernel, "float32") / projection.scale
                if projection.lora is not None:
                    kernel = kernel + projection.lora
            kernel = keras.ops.convert_to_numpy(kernel)
            bias = projection.bias
            bias = None if bias is None else keras.ops.convert_to_numpy(bias)
            if name != "qkv":
                out[name] = (kernel, bias)
                continue
            edges = (0, self._q_width, self._q_width + self._k_width, None)
            for part, start, stop in zip(
                ("query", "key", "value"), edges[:-1], edges[1:]
            ):
                out[part] = (
                    kernel[:, start:stop],
                    None if bias is None else bias[start:stop],
                )
        return out

    def load_projection_weights(self, weights):
        """Sets float kernels and biases from `{name: (kernel, bias)}`.

        The inverse of `projection_weights` on a built, unquantised layer
        (LoRA adapters, if any, are left as they are).
        """
        if self.quantization_mode is not None:
            raise ValueError(
                "`load_projection_weights` needs an unquantised layer. "
                f"Received: a layer quantised to {self.quantization_mode!r}"
            )
        for name in self._projection_names:
            parts = ("query", "key", "value") if name == "qkv" else (name,)
            missing = [p for p in parts if p not in weights]
            if missing:
                raise ValueError(
                    f"`weights` lacks the {missing} projection(s). "
                    f"Received: names {sorted(weights)}"
                )
            kernel = ops.concatenate(
                [ops.convert_to_tensor(weights[p][0]) for p in parts], axis=-1
            )
            getattr(self, f"{name}_kernel").assign(kernel)
            bias = getattr(self, f"{name}_bias")
            if bias is not None:
                bias.assign(
                    ops.concatenate(
                        [ops.convert_to_tensor(weights[p][1]) for p in parts],
                        axis=-1,
                    )
                )
