"""Squeeze-and-Excitation channel gate (Hu et al. 2018, SENet)."""

import keras
from keras import ops

from layers import vision_utils
from layers.channel_gate import ChannelGateBase
from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.validation import check_activation
from layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="attention_zoo")
class SqueezeExcite(ChannelGateBase):
    """Squeeze-and-Excitation block: a learned per-channel gate.

    Squeeze: global average pooling turns each channel into one number.
    Excite: a bottleneck MLP (`channels -> hidden -> channels`) followed by a
    sigmoid gives one gate in `[0, 1]` per channel, and the input is rescaled
    channel-wise by it: `y = x * gate(mean_hw(x))`.

    The bottleneck width is `hidden_channels` when given, otherwise
    `max(min_channels, channels // reduction)` (the paper uses `r = 16`).

    References:
        Hu, Shen & Sun 2018, "Squeeze-and-Excitation Networks" (CVPR).

    Args:
        channels: expected number of input channels, or `None` to infer it
            from the input (checked against the input when given).
        reduction: channel reduction ratio `r` of the bottleneck; must not
            exceed the channel count.
        hidden_channels: explicit bottleneck width (overrides `reduction`).
        min_channels: lower bound of the bottleneck width.
        act: activation of the bottleneck (any Keras activation name).
        gate: `"sigmoid"` (paper) or `"hard_sigmoid"` (MobileNetV3).
        use_bias: whether the two dense layers use biases.
        data_format: `"channels_last"` (`[B, H, W, C]`, default) or
            `"channels_first"` (`[B, C, H, W]`).
        kernel_initializer: initializer of the dense kernels.
        bias_initializer: initializer of the dense biases.
        kernel_regularizer: optional regularizer of the dense kernels.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Call arguments and Returns: see `ChannelGateBase`, whose call every
    channel gate shares.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 32))
    >>> se = SqueezeExcite(reduction=8)
    >>> y, gate = se(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(gate.shape)
    ((2, 8, 8, 32), (2, 1, 1, 32))
    """

    def __init__(
        self,
        channels=None,
        reduction=16,
        hidden_channels=None,
        min_channels=1,
        act="relu",
        gate="sigmoid",
        use_bias=True,
        data_format="channels_last",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("channels", channels, allow_none=True)
        check_positive_int("reduction", reduction)
        check_positive_int("hidden_channels", hidden_channels, allow_none=True)
        check_positive_int("min_channels", min_channels)
        if hidden_channels is None:
            vision_utils.check_reduction(channels, reduction)
        self.channels = channels
        self.reduction = reduction
        self.hidden_channels = hidden_channels
        self.min_channels = min_channels
        self.act = check_activation("act", act)
        self.gate = vision_utils.check_gate(gate)
        self.use_bias = use_bias
        self.data_format = vision_utils.check_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = False

    def _dense(self, units, activation, name):
        return keras.layers.Dense(
            units,
            activation=activation,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        channels = self.input_channels(input_shape)
        self._num_channels = channels
        self._hidden = vision_utils.hidden_width(
            channels, self.reduction, self.hidden_channels, self.min_channels
        )
        # The excitation MLP acts on pooled descriptors: [B, C] -> [B, C].
        self.reduce = self._dense(self._hidden, self.act, "reduce")
        self.reduce.build((None, channels))
        self.expand = self._dense(channels, None, "expand")
        self.expand.build((None, self._hidden))

    def _excite(self, descriptor):
        # descriptor: [B, C] -> logits [B, C]
        return self.expand(self.reduce(descriptor))

    def _channel_logits(self, inputs):
        axes = vision_utils.spatial_axes(self.data_format)
        return self._excite(ops.mean(inputs, axis=axes))

    def get_config(self):
        config = {
            "channels": self.channels,
            "reduction": self.reduction,
            "hidden_channels": self.hidden_channels,
            "min_channels": self.min_channels,
            "act": keras.activations.serialize(self.act),
            "gate": self.gate,
            "use_bias": self.use_bias,
            "data_format": self.data_format,
            **serialize_weight_args(
                self,
                "kernel_initializer",
                "bias_initializer",
                "kernel_regularizer",
            ),
        }
        return {**super().get_config(), **config}
