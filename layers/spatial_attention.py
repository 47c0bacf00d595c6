"""CBAM's spatial attention module (Woo et al. 2018, CBAM)."""

import functools

import keras
import numpy as np
from keras import ops

from layers import vision_utils
from layers.image_attention import ImageAttentionBase
from layers.initializers import serialize_weight_args
from layers.validation import check_odd_int
from layers.validation import check_positive_int

# Maps up to this height and width convolve as two matmuls
# (`SpatialAttention._convolve_rows`); the banded matrices grow with the
# square of the size, so larger maps use the depthwise convolution.
ROW_MATMUL_MAX_SIZE = 32


def _fits_row_matmuls(height, width):
    return (
        height is not None
        and width is not None
        and max(height, width) <= ROW_MATMUL_MAX_SIZE
    )


@functools.cache
def _band_index(width, kernel_size):
    """`[2*W, k*W]` indices into the flat `[k, k, 2, 1]` kernel plus one
    zero: entry `(c, w'), (i, w)` is tap `(i, w' - w + k // 2, c)`, or the
    zero where that tap lies outside the kernel."""
    half = kernel_size // 2
    c, w_in, i, w_out = np.ogrid[:2, :width, :kernel_size, :width]
    j = w_in - w_out + half
    index = np.where(
        (j >= 0) & (j < kernel_size),
        (i * kernel_size + j) * 2 + c,
        kernel_size * kernel_size * 2,
    )
    return index.reshape(2 * width, kernel_size * width).astype("int32")


@functools.cache
def _row_shift(height, kernel_size):
    """`[H, H*k]` 0/1 matrix: entry `h, (h', i)` is 1 where
    `h' = h + i - k // 2`."""
    half = kernel_size // 2
    h_out, h_in, i = np.ogrid[:height, :height, :kernel_size]
    shift = h_in == h_out + i - half
    return shift.reshape(height, height * kernel_size).astype("float32")


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
        self.input_channels(input_shape)
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
        # avg, peak: [B, H, W, 1] (channels_first: [B, 1, H, W]), the mean
        # and the maximum over channels.
        avg, peak = vision_utils.mean_and_max(inputs, axis)
        _, height, width, _ = vision_utils.nhwc_shape(
            inputs.shape, self.data_format
        )
        if _fits_row_matmuls(height, width):
            logits = self._convolve_rows(avg, peak, height, width)
        else:
            descriptor = ops.concatenate([avg, peak], axis=axis)
            descriptor = vision_utils.to_channels_last(
                descriptor, self.data_format
            )
            logits = self._convolve(descriptor)  # [B, H, W, 1]
        if self.conv.use_bias:
            logits = logits + ops.cast(self.conv.bias, logits.dtype)
        if self.norm is not None:
            logits = self.norm(logits, training=training)
        weights = vision_utils.apply_gate(logits, self.gate, self.compute_dtype)
        return vision_utils.from_channels_last(weights, self.data_format)

    def _convolve(self, descriptor):
        # `self.conv` ([k, k, 2, 1] kernel, no bias) applied to
        # [B, H, W, 2]. A convolution to one output channel is the
        # depthwise convolution with the same kernel summed over the two
        # input channels; on CPU, TensorFlow's depthwise kernel runs it
        # (forward and backward) faster than the general one, which is
        # tuned for many channels.
        kernel = ops.cast(self.conv.kernel, descriptor.dtype)
        return ops.sum(
            ops.depthwise_conv(descriptor, kernel, padding="same"),
            axis=-1,
            keepdims=True,
        )

    def _convolve_rows(self, avg, peak, height, width):
        # `self.conv` (no bias) on small maps as two matmuls, the same sum
        # as the "same"-padded convolution in another order:
        # 1. along each image row, [B*H, 2*W] @ [2*W, k*W]: every kernel
        #    row i applied across the width (a banded matrix gathered from
        #    the kernel, zero off the band), taps[b, h', i, w];
        # 2. down the columns, [H, H*k] @ [B, H*k, W]: output row h sums
        #    taps[b, h + i - k // 2, i] over i (a constant 0/1 matrix).
        # On CPU the two matmuls and their gradients take about half the
        # time of the depthwise convolution on a CIFAR ResNet's maps.
        k = self.kernel_size
        # rows: [B*H, 2*W], the mean's row then the maximum's.
        rows = ops.concatenate(
            [ops.reshape(avg, (-1, width)), ops.reshape(peak, (-1, width))],
            axis=1,
        )
        kernel = ops.reshape(ops.cast(self.conv.kernel, rows.dtype), (-1,))
        # One zero after the kernel's k * k * 2 taps: the off-band entry.
        kernel = ops.concatenate([kernel, ops.zeros((1,), rows.dtype)], 0)
        band = ops.take(kernel, _band_index(width, k))  # [2*W, k*W]
        taps = ops.reshape(ops.matmul(rows, band), (-1, height * k, width))
        shift = ops.convert_to_tensor(_row_shift(height, k), rows.dtype)
        return ops.expand_dims(ops.matmul(shift, taps), -1)  # [B, H, W, 1]

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
