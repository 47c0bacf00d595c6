"""MLP-Mixer block (Tolstikhin et al. 2021, "MLP-Mixer")."""

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.validation import check_activation
from layers.validation import check_positive_int
from layers.validation import check_positive_number
from layers.validation import check_rate
from layers.validation import check_token_shape


@keras.saving.register_keras_serializable(package="attention_zoo")
class MixerBlock(keras.layers.Layer):
    """MLP-Mixer block: a token-mixing MLP, then a channel-mixing MLP.

    Mixer replaces self-attention by an MLP applied across the token axis
    (the same MLP for every channel), followed by the usual per-token
    channel MLP; both are pre-LayerNorm residual branches:

        x = x + T(MLP_tokens(T(LayerNorm(x))))     # T: swap N and C
        x = x + MLP_channels(LayerNorm(x))

    Each MLP is `Dense -> act -> Dense`. The number of tokens is fixed at
    build time (the token MLP has an `N x tokens_mlp_dim` kernel).

    References:
        Tolstikhin et al. 2021, "MLP-Mixer: An all-MLP Architecture for
        Vision" (NeurIPS).

    Args:
        tokens_mlp_dim: hidden width of the token-mixing MLP (`D_S`);
            `None` gives `int(0.5 * C)` (at least 1), as timm's default.
        channels_mlp_dim: hidden width of the channel-mixing MLP (`D_C`);
            `None` gives `4 * C`.
        act: activation of both MLPs (paper: GELU).
        dropout: dropout rate after each MLP's activation and output.
        epsilon: LayerNorm epsilon.
        kernel_initializer: initializer of the dense kernels.
        kernel_regularizer: optional regularizer of the dense kernels.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: tokens `[B, N, C]` with `N` and `C` known.
        training: Python bool, enables dropout.

    Returns:
        `[B, N, C]`, the shape of `inputs`.

    Example:

    >>> tokens = keras.random.normal((2, 16, 32))  # e.g. 4x4 patches
    >>> y = MixerBlock(tokens_mlp_dim=16, channels_mlp_dim=64)(tokens)
    >>> tuple(y.shape)
    (2, 16, 32)
    """

    def __init__(
        self,
        tokens_mlp_dim=None,
        channels_mlp_dim=None,
        act="gelu",
        dropout=0.0,
        epsilon=1e-6,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tokens_mlp_dim = check_positive_int(
            "tokens_mlp_dim", tokens_mlp_dim, allow_none=True
        )
        self.channels_mlp_dim = check_positive_int(
            "channels_mlp_dim", channels_mlp_dim, allow_none=True
        )
        self.act = check_activation("act", act)
        self.dropout = check_rate("dropout", dropout)
        self.epsilon = check_positive_number("epsilon", epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _dense(self, units, name, activation=None):
        return keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        shape = check_token_shape(input_shape, "MixerBlock")
        _, tokens, channels = shape
        tokens_dim = self.tokens_mlp_dim or max(1, int(0.5 * channels))
        channels_dim = self.channels_mlp_dim or 4 * channels
        self.input_spec = keras.InputSpec(ndim=3, axes={1: tokens, 2: channels})
        self.token_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="token_norm"
        )
        self.token_norm.build(shape)
        # The token MLP acts on [B, C, N]: one MLP shared by all channels.
        self.token_dense1 = self._dense(tokens_dim, "token_dense1", self.act)
        self.token_dense1.build((None, channels, tokens))
        self.token_dense2 = self._dense(tokens, "token_dense2")
        self.token_dense2.build((None, channels, tokens_dim))
        self.channel_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="channel_norm"
        )
        self.channel_norm.build(shape)
        self.channel_dense1 = self._dense(
            channels_dim, "channel_dense1", self.act
        )
        self.channel_dense1.build((None, tokens, channels))
        self.channel_dense2 = self._dense(channels, "channel_dense2")
        self.channel_dense2.build((None, tokens, channels_dim))
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )

    def _mlp(self, x, first, second, training):
        x = self.dropout_layer(first(x), training=training)
        return self.dropout_layer(second(x), training=training)

    def call(self, inputs, training=None):
        # Token mixing: [B, N, C] -> [B, C, N] -> MLP over N -> [B, N, C].
        mixed = ops.transpose(self.token_norm(inputs), (0, 2, 1))
        mixed = self._mlp(mixed, self.token_dense1, self.token_dense2, training)
        x = inputs + ops.transpose(mixed, (0, 2, 1))
        # Channel mixing: the per-token MLP.
        mixed = self._mlp(
            self.channel_norm(x),
            self.channel_dense1,
            self.channel_dense2,
            training,
        )
        return x + mixed

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = {
            "tokens_mlp_dim": self.tokens_mlp_dim,
            "channels_mlp_dim": self.channels_mlp_dim,
            "act": keras.activations.serialize(self.act),
            "dropout": self.dropout,
            "epsilon": self.epsilon,
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
