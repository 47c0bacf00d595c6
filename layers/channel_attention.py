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

    Args, call arguments and returns: those of `SqueezeExcite`, whose
    constructor and call this layer keeps; the bottleneck MLP is the one
    shared by both descriptors, and the paper's settings are SE's defaults
    (`reduction=16`, a ReLU bottleneck, a sigmoid gate).

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
