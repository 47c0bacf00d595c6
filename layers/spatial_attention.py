"""CBAM's spatial attention module (Woo et al. 2018, CBAM)."""

import keras
from keras import ops

from layers import vision_utils
from layers.image_attention import ImageAttentionBase
from layers.initializers import serialize_weight_args
from layers.validation import check_odd_int
from layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="attention_zoo")
class SpatialAttention(ImageAttentionBase):
    """Spatial attention of CBAM: one gate in `[0, 1]` per position.

    The channel-wise average and maximum maps (`[B, H, W, 2]`) go through
    one `kernel_size x kernel_size` convolution with "same" padding and a
    sigmoid, giving a map `[B, H, W, 1]` that rescales every channel at that
    position: `y = x * sigmoid(conv([mean_c(x), max_c(x)]))`.

    References:
        Woo, Park, Lee & Kweon 2018, "CBAM: Convolutional Block Attention
        Module" (ECCV), section 3 "Spatial attention module".

    Args:
        channels: expected number of input channels, or `None` (the layer
            works with any channel count; accepted for a uniform
            `get_attention(name)(channels)` interface and checked if given).
        kernel_size: odd size of the square convolution (paper: 7).
        gate: `"sigmoid"` (paper) or `"hard_sigmoid"`.
        use_bias: whether the convolution has a bias.
        use_batch_norm: add batch normalisation after the convolution, as
            the authors' code does (the paper's equation has none).
        data_format: `"channels_last"` (default) or `"channels_first"`.
        kernel_initializer: initializer of the convolution kernel.
        kernel_regularizer: optional regularizer of the convolution kernel.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: images `[B, H, W, C]` (or `[B, C, H, W]`).
        return_attention_scores: if `True`, also return the spatial map.
        training: Python bool, used by batch normalisation.

    Returns:
        The rescaled images, same shape as `inputs`; with
        `return_attention_scores=True`, a tuple `(outputs, spatial_map)`
        where `spatial_map` is `[B, H, W, 1]` (`[B, 1, H, W]` for
        channels_first), values in `[0, 1]`.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> y, attn = SpatialAttention(kernel_size=3)(
    ...     x, return_attention_scores=True
    ... )
    >>> tuple(attn.shape)
    (2, 8, 8, 1)
    """

    def __init__(
        self,
        channels=None,
        kernel_size=7,
        gate="sigmoid",
        use_bias=True,
        use_batch_norm=False,
        data_format="channels_last",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("channels", channels, allow_none=True)
        self.channels = channels
        self.kernel_size = check_odd_int("kernel_size", kernel_size)
        self.gate = vision_utils.check_gate(gate)
        self.use_bias = use_bias
        self.use_batch_norm = use_batch_norm
        self.data_format = vision_utils.check_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        name = type(self).__name__
        vision_utils.check_image_shape(input_shape, name, self.data_format)
        vision_utils.resolve_channels(
            self.channels, input_shape, self.data_format, name
        )
        _, height, width, _ = vision_utils.nhwc_shape(
            input_shape, self.data_format
        )
        # The convolution always runs channels_last (see vision_utils).
        self.conv = keras.layers.Conv2D(
            1,
            self.kernel_size,
            padding="same",
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.conv.build((None, height, width, 2))
        self.norm = None
        if self.use_batch_norm:
            self.norm = keras.layers.BatchNormalization(
                dtype=self.dtype_policy, name="norm"
            )
            self.norm.build((None, height, width, 1))

    def spatial_map(self, inputs, training=None):
        """Returns the `[0, 1]` map, broadcastable to `inputs`."""
        axis = vision_utils.channel_axis(self.data_format)
        # descriptor: [B, H, W, 2] = [mean over C, max over C]
        descriptor = ops.concatenate(
            vision_utils.mean_and_max(inputs, axis), axis=axis
        )
        descriptor = vision_utils.to_channels_last(descriptor, self.data_format)
        logits = self._convolve(descriptor)  # [B, H, W, 1]
        if self.norm is not None:
            logits = self.norm(logits, training=training)
        weights = vision_utils.apply_gate(logits, self.gate, self.compute_dtype)
        return vision_utils.from_channels_last(weights, self.data_format)

    def _convolve(self, descriptor):
        # `self.conv` ([k, k, 2, 1] kernel) applied to [B, H, W, 2]. A
        # convolution to one output channel is the depthwise convolution
        # with the same kernel summed over the two input channels; on CPU,
        # TensorFlow's depthwise kernel runs it (forward and backward)
        # faster than the general one, which is tuned for many channels.
        kernel = ops.cast(self.conv.kernel, descriptor.dtype)
        logits = ops.sum(
            ops.depthwise_conv(descriptor, kernel, padding="same"),
            axis=-1,
            keepdims=True,
        )
        if self.conv.use_bias:
            logits = logits + ops.cast(self.conv.bias, logits.dtype)
        return logits

    def call(self, inputs, return_attention_scores=False, training=None):
        attention = self.spatial_map(inputs, training=training)
        return self.with_scores(
            inputs * attention, attention, return_attention_scores
        )

    def attention_scores_shape(self, input_shape):
        shape = list(input_shape)
        shape[vision_utils.channel_axis(self.data_format)] = 1
        return tuple(shape)

    def get_config(self):
        config = {
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "gate": self.gate,
            "use_bias": self.use_bias,
            "use_batch_norm": self.use_batch_norm,
            "data_format": self.data_format,
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
