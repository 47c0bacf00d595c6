"""gMLP block with a Spatial Gating Unit (Liu et al. 2021, "Pay Attention to
MLPs")."""

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.validation import check_activation
from layers.validation import check_non_negative_number
from layers.validation import check_positive_int
from layers.validation import check_positive_number
from layers.validation import check_rate
from layers.validation import check_token_shape


@keras.saving.register_keras_serializable(package="attention_zoo")
class GatedMLPBlock(keras.layers.Layer):
    """gMLP block: a channel MLP whose hidden units are gated across tokens.

        z = act(Dense_ffn(LayerNorm(x)))                 # [B, N, F]
        u, v = split(z, 2, axis=-1)                      # [B, N, F/2] each
        s = W LayerNorm(v) + b                           # W: [N, N] over tokens
        y = x + Dense_C(u * s)

    The Spatial Gating Unit's token projection `W` is initialised near zero
    (normal, stddev `spatial_init_std`) and its bias `b` to ones, so each
    block starts as a plain feed-forward block (`s ~ 1`), as the paper
    requires for stable training. The number of tokens is fixed at build
    time.

    References:
        Liu, Dai, So & Le 2021, "Pay Attention to MLPs" (NeurIPS).

    Args:
        ffn_dim: hidden width `d_ffn` before the split (even); `None` gives
            `6 * C` (the paper's ratio for every gMLP size).
        act: activation after the input projection (paper: GELU).
        dropout: dropout rate on the gated units and the block output.
        epsilon: LayerNorm epsilon.
        spatial_init_std: standard deviation of the near-zero initial token
            projection `W`.
        kernel_initializer: initializer of the channel projections.
        kernel_regularizer: optional regularizer of all kernels.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: tokens `[B, N, C]` with `N` and `C` known.
        training: Python bool, enables dropout.

    Returns:
        `[B, N, C]`, the shape of `inputs`.

    Example:

    >>> tokens = keras.random.normal((2, 16, 32))
    >>> y = GatedMLPBlock(ffn_dim=64)(tokens)
    >>> tuple(y.shape)
    (2, 16, 32)
    """

    def __init__(
        self,
        ffn_dim=None,
        act="gelu",
        dropout=0.0,
        epsilon=1e-6,
        spatial_init_std=1e-6,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("ffn_dim", ffn_dim, allow_none=True)
        if ffn_dim is not None and ffn_dim % 2:
            raise ValueError(
                "`ffn_dim` must be even (it is split into two halves). "
                f"Received: ffn_dim={ffn_dim}"
            )
        self.ffn_dim = ffn_dim
        self.act = check_activation("act", act)
        self.dropout = check_rate("dropout", dropout)
        self.epsilon = check_positive_number("epsilon", epsilon)
        self.spatial_init_std = check_non_negative_number(
            "spatial_init_std", spatial_init_std
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        shape = check_token_shape(input_shape, "GatedMLPBlock")
        _, tokens, channels = shape
        ffn_dim = self.ffn_dim or 6 * channels
        self.input_spec = keras.InputSpec(ndim=3, axes={1: tokens, 2: channels})
        self.norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="norm"
        )
        self.norm.build(shape)
        self.proj_in = keras.layers.Dense(
            ffn_dim,
            activation=self.act,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="proj_in",
        )
        self.proj_in.build(shape)
        half = ffn_dim // 2
        self.gate_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="gate_norm"
        )
        self.gate_norm.build((None, tokens, half))
        # Dense over the token axis of [B, F/2, N]: near-zero W, bias one.
        self.spatial_proj = keras.layers.Dense(
            tokens,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=self.spatial_init_std
            ),
            bias_initializer="ones",
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="spatial_proj",
        )
        self.spatial_proj.build((None, half, tokens))
        self.proj_out = keras.layers.Dense(
            channels,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="proj_out",
        )
        self.proj_out.build((None, tokens, half))
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )

    def spatial_gate(self, v):
        """The Spatial Gating Unit gate `W LayerNorm(v) + b`, `[B, N, F/2]`."""
        v = ops.transpose(self.gate_norm(v), (0, 2, 1))  # [B, F/2, N]
        return ops.transpose(self.spatial_proj(v), (0, 2, 1))

    def call(self, inputs, training=None):
        z = self.proj_in(self.norm(inputs))  # [B, N, F]
        u, v = ops.split(z, 2, axis=-1)
        gated = self.dropout_layer(u * self.spatial_gate(v), training=training)
        outputs = self.dropout_layer(self.proj_out(gated), training=training)
        return inputs + outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = {
            "ffn_dim": self.ffn_dim,
            "act": keras.activations.serialize(self.act),
            "dropout": self.dropout,
            "epsilon": self.epsilon,
            "spatial_init_std": self.spatial_init_std,
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
