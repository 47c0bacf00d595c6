"""Convolutional Block Attention Module (Woo et al. 2018, CBAM)."""

import keras

from layers import vision_utils
from layers.channel_attention import ChannelAttention
from layers.initializers import serialize_weight_args
from layers.spatial_attention import SpatialAttention


@keras.saving.register_keras_serializable(package="attention_zoo")
class CBAM(keras.layers.Layer):
    """CBAM: `ChannelAttention` followed by `SpatialAttention`.

    The two gates are applied sequentially in the order the paper found
    best, channel first: `x' = x * Mc(x)`, then `y = x' * Ms(x')`.

    References:
        Woo, Park, Lee & Kweon 2018, "CBAM: Convolutional Block Attention
        Module" (ECCV).

    Args:
        channels: expected number of input channels, or `None` to infer it.
        reduction: reduction ratio of the channel MLP (paper: 16); must not
            exceed the channel count.
        hidden_channels: explicit channel-MLP width (overrides `reduction`).
        min_channels: lower bound of the channel-MLP width.
        kernel_size: odd size of the spatial convolution (paper: 7).
        act: activation of the channel MLP.
        gate: `"sigmoid"` (paper) or `"hard_sigmoid"`, used by both gates.
        use_bias: whether the channel MLP and spatial convolution use
            biases.
        use_batch_norm: batch normalisation after the spatial convolution
            (as in the authors' code).
        data_format: `"channels_last"` (default) or `"channels_first"`.
        kernel_initializer: initializer of all kernels.
        bias_initializer: initializer of the channel-MLP biases.
        kernel_regularizer: optional regularizer of all kernels.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: images `[B, H, W, C]` (or `[B, C, H, W]`).
        return_attention_scores: if `True`, also return both maps.
        training: Python bool, used by the optional batch normalisation.

    Returns:
        The refined images, same shape as `inputs`; with
        `return_attention_scores=True`, a tuple
        `(outputs, (channel_gate, spatial_map))` with `channel_gate`
        `[B, 1, 1, C]` and `spatial_map` `[B, H, W, 1]` (channels_first:
        `[B, C, 1, 1]` and `[B, 1, H, W]`).

    Example:

    >>> x = keras.random.normal((2, 8, 8, 32))
    >>> y, (ca, sa) = CBAM(reduction=8)(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(ca.shape), tuple(sa.shape)
    ((2, 8, 8, 32), (2, 1, 1, 32), (2, 8, 8, 1))
    """

    def __init__(
        self,
        channels=None,
        reduction=16,
        hidden_channels=None,
        min_channels=1,
        kernel_size=7,
        act="relu",
        gate="sigmoid",
        use_bias=True,
        use_batch_norm=False,
        data_format="channels_last",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # The two sub-blocks validate their own arguments.
        self.channel_attention = ChannelAttention(
            channels=channels,
            reduction=reduction,
            hidden_channels=hidden_channels,
            min_channels=min_channels,
            act=act,
            gate=gate,
            use_bias=use_bias,
            data_format=data_format,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            dtype=self.dtype_policy,
            name="channel_attention",
        )
        self.spatial_attention = SpatialAttention(
            channels=channels,
            kernel_size=kernel_size,
            gate=gate,
            use_bias=use_bias,
            use_batch_norm=use_batch_norm,
            data_format=data_format,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            dtype=self.dtype_policy,
            name="spatial_attention",
        )
        self.channels = channels
        self.reduction = reduction
        self.hidden_channels = hidden_channels
        self.min_channels = min_channels
        self.kernel_size = kernel_size
        self.act = self.channel_attention.act
        self.gate = gate
        self.use_bias = use_bias
        self.use_batch_norm = use_batch_norm
        self.data_format = data_format
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        vision_utils.check_image_shape(input_shape, "CBAM", self.data_format)
        self.channel_attention.build(input_shape)
        self.spatial_attention.build(input_shape)

    def call(self, inputs, return_attention_scores=False, training=None):
        refined, channel_gate = self.channel_attention(
            inputs, return_attention_scores=True
        )
        outputs, spatial_map = self.spatial_attention(
            refined, return_attention_scores=True, training=training
        )
        if return_attention_scores:
            return outputs, (channel_gate, spatial_map)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(
        self, inputs, return_attention_scores=False, training=None
    ):
        outputs, channel_gate = self.channel_attention.compute_output_spec(
            inputs, return_attention_scores=True
        )
        _, spatial_map = self.spatial_attention.compute_output_spec(
            inputs, return_attention_scores=True
        )
        if return_attention_scores:
            return outputs, (channel_gate, spatial_map)
        return outputs

    def get_config(self):
        config = {
            "channels": self.channels,
            "reduction": self.reduction,
            "hidden_channels": self.hidden_channels,
            "min_channels": self.min_channels,
            "kernel_size": self.kernel_size,
            "act": keras.activations.serialize(self.act),
            "gate": self.gate,
            "use_bias": self.use_bias,
            "use_batch_norm": self.use_batch_norm,
            "data_format": self.data_format,
            **serialize_weight_args(
                self,
                "kernel_initializer",
                "bias_initializer",
                "kernel_regularizer",
            ),
        }
        return {**super().get_config(), **config}
