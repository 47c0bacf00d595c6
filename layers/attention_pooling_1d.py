"""Attention pooling over a sequence with learned context vectors (HAN).

Yang et al. 2016, "Hierarchical Attention Networks for Document
Classification": `u_t = tanh(W h_t + b)`, `a_t = softmax_t(u_t . u_w)`,
`s = sum_t a_t h_t`. Several heads (several context vectors over the shared
projection) follow Lin et al. 2017, "A Structured Self-attentive Sentence
Embedding".
"""

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.masking import check_mask_shape
from layers.masking import masked_softmax
from layers.validation import check_choice
from layers.validation import check_positive_int

MERGE_MODES = ("concat", "mean")


@keras.saving.register_keras_serializable(package="attention_zoo")
class AttentionPooling1D(keras.layers.Layer):
    """Pools a sequence into one vector with learned attention ("which words
    mattered").

    Hierarchical-attention-network pooling (Yang et al. 2016, "Hierarchical
    Attention Networks for Document Classification",
    https://aclanthology.org/N16-1174): each step is projected,
    `u_t = tanh(W h_t + b)`, scored against a learned context vector,
    `e_t = u_t . u_w`, normalised over the unmasked steps,
    `a = softmax(e)`, and the steps are summed, `s = sum_t a_t h_t`.

    With `num_heads > 1` there are several context vectors over the shared
    projection (Lin et al. 2017, "A Structured Self-attentive Sentence
    Embedding", https://arxiv.org/abs/1703.03130), one pooled vector per
    head; `merge="concat"` concatenates them (`[B, heads * D]`, head-major),
    `merge="mean"` averages them (`[B, D]`).

    Masks (explicit or Keras's automatic ones, e.g. from
    `Embedding(mask_zero=True)`) are honoured: masked steps get exactly zero
    weight, and a fully masked sequence pools to zeros (weights all zero,
    never NaN). Scores and softmax are float32 under mixed precision. The
    layer consumes the time axis, so it outputs no mask.

    Args:
        units: size of the attention projection `W`; defaults to the input
            feature size.
        num_heads: number of context vectors (heads).
        merge: how heads are combined, `"concat"` or `"mean"`.
        use_bias: whether the projection has a bias `b`.
        kernel_initializer: initializer of `W` and the context vectors.
        bias_initializer: initializer of `b`.
        kernel_regularizer: regularizer of `W` and the context vectors.
        bias_regularizer: regularizer of `b`.
        kernel_constraint: constraint of `W` and the context vectors.
        bias_constraint: constraint of `b`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[B, T, D]` sequence.
        mask: optional boolean `[B, T]`, `True` = step counts.
        return_attention_scores: also return the weights.
        training: unused (no dropout); accepted for the Keras convention.

    Returns:
        The pooled `[B, D * num_heads]` (`"concat"`) or `[B, D]` (`"mean"`)
        tensor; with `return_attention_scores`, `(pooled, weights)` where
        the float32 weights are `[B, T]` for one head and `[B, heads, T]`
        otherwise.

    Example:

    >>> import numpy as np
    >>> tokens = keras.Input((20,), dtype="int32")
    >>> h = keras.layers.Embedding(1000, 32, mask_zero=True)(tokens)
    >>> h = keras.layers.Bidirectional(
    ...     keras.layers.GRU(16, return_sequences=True))(h)
    >>> pooled, weights = AttentionPooling1D(units=32)(
    ...     h, return_attention_scores=True)
    >>> model = keras.Model(tokens, [pooled, weights])
    >>> p, w = model(np.ones((2, 20), "int32"))
    >>> tuple(p.shape), tuple(w.shape)
    ((2, 32), (2, 20))
    """

    def __init__(
        self,
        units=None,
        num_heads=1,
        merge="concat",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        check_positive_int("units", units, allow_none=True)
        check_positive_int("num_heads", num_heads)
        check_choice("merge", merge, MERGE_MODES)
        super().__init__(**kwargs)
        self.supports_masking = True
        self.units = units
        self.num_heads = num_heads
        self.merge = merge
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "`AttentionPooling1D` expects inputs of shape [batch, steps, "
                f"features] with known features. Received: "
                f"inputs.shape={input_shape}"
            )
        features = input_shape[-1]
        units = self.units or features
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, units),
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(units,),
                initializer=clone_initializer(self.bias_initializer),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        # One learned context vector u_w per head: [units, heads].
        self.context = self.add_weight(
            name="context",
            shape=(units, self.num_heads),
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def call(
        self, inputs, mask=None, return_attention_scores=False, training=None
    ):
        shape = tuple(inputs.shape)
        if len(shape) != 3:
            raise ValueError(
                "`AttentionPooling1D` expects inputs of shape [batch, steps, "
                f"features]. Received: inputs.shape={shape}"
            )
        # u: [B, T, U] = tanh(h W + b)
        u = ops.matmul(inputs, ops.cast(self.kernel, inputs.dtype))
        if self.bias is not None:
            u = u + ops.cast(self.bias, inputs.dtype)
        u = ops.tanh(u)
        # logits: [B, heads, T], float32
        logits = ops.cast(
            ops.matmul(u, ops.cast(self.context, u.dtype)), "float32"
        )
        logits = ops.swapaxes(logits, 1, 2)
        if mask is not None:
            check_mask_shape("mask", mask, shape[:2], f"inputs.shape={shape}")
            mask = ops.expand_dims(ops.cast(mask, "bool"), 1)  # [B, 1, T]
        weights = masked_softmax(logits, mask)
        # pooled: [B, heads, D] = weights @ h
        pooled = ops.matmul(ops.cast(weights, inputs.dtype), inputs)
        if self.merge == "mean":
            pooled = ops.mean(pooled, axis=1)
        else:
            pooled = ops.reshape(pooled, (-1, self.num_heads * shape[-1]))
        if not return_attention_scores:
            return pooled
        if self.num_heads == 1:
            weights = weights[:, 0]
        return pooled, weights

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        heads = self.num_heads if self.merge == "concat" else 1
        features = None if input_shape[-1] is None else input_shape[-1] * heads
        return (input_shape[0], features)

    def compute_output_spec(
        self, inputs, mask=None, return_attention_scores=False, training=None
    ):
        pooled = keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return pooled
        batch, steps = inputs.shape[0], inputs.shape[1]
        weights_shape = (
            (batch, steps)
            if self.num_heads == 1
            else (batch, self.num_heads, steps)
        )
        return pooled, keras.KerasTensor(weights_shape, dtype="float32")

    def get_config(self):
        config = {
            "units": self.units,
            "num_heads": self.num_heads,
            "merge": self.merge,
            "use_bias": self.use_bias,
            **serialize_weight_args(
                self,
                "kernel_initializer",
                "bias_initializer",
                "kernel_regularizer",
                "bias_regularizer",
                "kernel_constraint",
                "bias_constraint",
            ),
        }
        return {**super().get_config(), **config}
