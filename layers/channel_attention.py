"""CBAM's channel attention module (Woo et al. 2018, CBAM)."""

import keras
from keras import ops

from layers import vision_utils
from layers.squeeze_excite import SqueezeExcite


@keras.saving.register_keras_serializable(package="attention_zoo")
class ChannelAttention(SqueezeExcite):
    """Channel attention of CBAM: average- and max-pooled descriptors.

    Like `SqueezeExcite`, but the per-channel gate sees two descriptors, the
    spatial average and the spatial maximum of each channel, each passed
    through one shared bottleneck MLP; the two logits are summed before the
    gate: `gate = sigmoid(MLP(avg_hw(x)) + MLP(max_hw(x)))`, `y = x * gate`.

    References:
        Woo, Park, Lee & Kweon 2018, "CBAM: Convolutional Block Attention
        Module" (ECCV), section 3 "Channel attention module".

    Args:
        channels: expected number of input channels, or `None` to infer it.
        reduction: channel reduction ratio `r` of the shared MLP (paper: 16);
            must not exceed the channel count.
        hidden_channels: explicit bottleneck width (overrides `reduction`).
        min_channels: lower bound of the bottleneck width.
        act: activation of the bottleneck (paper: ReLU).
        gate: `"sigmoid"` (paper) or `"hard_sigmoid"`.
        use_bias: whether the shared MLP uses biases.
        data_format: `"channels_last"` (default) or `"channels_first"`.
        kernel_initializer: initializer of the dense kernels.
        bias_initializer: initializer of the dense biases.
        kernel_regularizer: optional regularizer of the dense kernels.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: images `[B, H, W, C]` (or `[B, C, H, W]`).
        return_attention_scores: if `True`, also return the channel gate.

    Returns:
        The rescaled images, same shape as `inputs`; with
        `return_attention_scores=True`, a tuple `(outputs, gate)` with
        `gate` of shape `[B, 1, 1, C]` (`[B, C, 1, 1]` for channels_first).

    Example:

    >>> x = keras.random.normal((2, 8, 8, 32))
    >>> y, gate = ChannelAttention(reduction=8)(x, return_attention_scores=True)
    >>> tuple(gate.shape)
    (2, 1, 1, 32)
    """

    def _channel_logits(self, inputs):
        axes = vision_utils.spatial_axes(self.data_format)
        avg, peak = vision_utils.mean_and_max(inputs, axes)
        channels = self._num_channels
        # Both descriptors go through the shared MLP as one batch,
        # [2B, C] -> [2B, C] (one matmul per layer instead of two), and
        # their two logits are summed: [B, C].
        descriptors = ops.concatenate(
            [
                ops.reshape(avg, (-1, channels)),
                ops.reshape(peak, (-1, channels)),
            ],
            axis=0,
        )
        logits = self._excite(descriptors)
        return ops.sum(ops.reshape(logits, (2, -1, channels)), axis=0)
