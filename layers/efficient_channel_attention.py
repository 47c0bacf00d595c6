"""Efficient Channel Attention (Wang et al. 2020, ECA-Net)."""

import math

import keras
import numpy as np
from keras import ops

from layers import vision_utils
from layers.channel_gate import ChannelGateBase
from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.validation import check_number
from layers.validation import check_odd_int
from layers.validation import check_positive_int
from layers.validation import check_positive_number


def eca_kernel_size(channels, gamma=2, beta=1):
    """ECA's adaptive kernel size `k = |log2(C) / gamma + beta / gamma|_odd`.

    As in the authors' code: `t = int(|(log2(C) + beta) / gamma|)`, and `k`
    is `t` when odd, `t + 1` when even (so `k >= 1`).

    Args:
        channels: number of channels `C` (positive int).
        gamma: the `gamma` of the mapping (paper: 2).
        beta: the `b` of the mapping (paper: 1).

    Returns:
        The odd kernel size as a Python int.
    """
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


@keras.saving.register_keras_serializable(package="attention_zoo")
class EfficientChannelAttention(ChannelGateBase):
    """ECA: a channel gate from a 1-D convolution across channels.

    Replaces SE's bottleneck MLP by one 1-D convolution (no bias, "same"
    zero padding) over the globally pooled channel descriptor, so each
    channel's gate depends on its `k` neighbouring channels and the block
    has only `k` weights: `y = x * sigmoid(conv1d_k(mean_hw(x)))`.

    The kernel size adapts to the channel count unless given:
    `k = |log2(C) / gamma + b / gamma|_odd` (see `eca_kernel_size`), e.g.
    C = 64 -> 3, 128 -> 5, 256 -> 5, 512 -> 5, 2048 -> 7.

    References:
        Wang, Wu, Zhu, Li, Zuo & Hu 2020, "ECA-Net: Efficient Channel
        Attention for Deep Convolutional Neural Networks" (CVPR).

    Args:
        channels: expected number of input channels, or `None` to infer it.
        kernel_size: odd kernel size of the 1-D convolution, or `None` for
            the adaptive size computed from the channel count.
        gamma: `gamma` of the adaptive kernel-size rule (paper: 2).
        beta: `b` of the adaptive kernel-size rule (paper: 1).
        gate: `"sigmoid"` (paper) or `"hard_sigmoid"`.
        data_format: `"channels_last"` (default) or `"channels_first"`.
        kernel_initializer: initializer of the convolution kernel.
        kernel_regularizer: optional regularizer of the convolution kernel.
        **kwargs: base `Layer` arguments.

    Call arguments and Returns: see `ChannelGateBase`, whose call every
    channel gate shares.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 64))
    >>> eca = EfficientChannelAttention()
    >>> y = eca(x)
    >>> eca.kernel_size_  # adaptive: C = 64 -> k = 3
    3
    """

    def __init__(
        self,
        channels=None,
        kernel_size=None,
        gamma=2,
        beta=1,
        gate="sigmoid",
        data_format="channels_last",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("channels", channels, allow_none=True)
        if kernel_size is not None:
            check_odd_int("kernel_size", kernel_size)
        self.channels = channels
        self.kernel_size = kernel_size
        self.gamma = check_positive_number("gamma", gamma)
        self.beta = check_number("beta", beta)
        self.gate = vision_utils.check_gate(gate)
        self.data_format = vision_utils.check_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_size_ = None
        if channels is not None:
            self.kernel_size_ = self._resolve_kernel_size(channels)

    def _resolve_kernel_size(self, channels):
        if self.kernel_size is not None:
            return self.kernel_size
        return eca_kernel_size(channels, self.gamma, self.beta)

    def build(self, input_shape):
        channels = self.input_channels(input_shape)
        #: The kernel size in use (adaptive or given), set once built.
        self.kernel_size_ = self._resolve_kernel_size(channels)
        # One filter sliding over the channel axis of [B, C, 1].
        self.conv = keras.layers.Conv1D(
            1,
            self.kernel_size_,
            padding="same",
            use_bias=False,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.conv.build((None, channels, 1))
        # The convolution runs as one matmul with a banded [C, C] matrix
        # gathered from its k weights: band[i, o] = kernel[i - o + k // 2]
        # inside the band, else the appended zero (index k). Same sums as
        # the 'same' convolution; much cheaper on CPU than a convolution
        # with one input and one output channel, forward and backward.
        k = self.kernel_size_
        offsets = np.arange(channels)[:, None] - np.arange(channels)[None]
        offsets = offsets + k // 2
        self._band_index = np.where(
            (offsets >= 0) & (offsets < k), offsets, k
        ).astype("int32")

    def _channel_logits(self, inputs):
        axes = vision_utils.spatial_axes(self.data_format)
        descriptor = ops.mean(inputs, axis=axes)  # [B, C]
        kernel = ops.cast(
            ops.reshape(self.conv.kernel, (-1,)), descriptor.dtype
        )
        taps = ops.concatenate([kernel, ops.zeros((1,), kernel.dtype)])
        # [B, C] @ banded [C, C] -> logits [B, C]
        return ops.matmul(descriptor, ops.take(taps, self._band_index))

    def get_config(self):
        config = {
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "gamma": self.gamma,
            "beta": self.beta,
            "gate": self.gate,
            "data_format": self.data_format,
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
