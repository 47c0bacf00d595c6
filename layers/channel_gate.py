"""The channel-gate base shared by SE, CBAM's channel attention and ECA.

Each of these blocks computes one logit per channel from the feature map
(`_channel_logits`, `[B, C]`), squashes it with the gate (`"sigmoid"` or
`"hard_sigmoid"`, float32) and rescales the channels: `y = x * gate`. The
subclasses state only how they compute the logits (Hu et al. 2018, SE: a
bottleneck MLP on the average; Woo et al. 2018, CBAM: the same MLP on the
average and the maximum; Wang et al. 2020, ECA: a 1-D convolution across
channels).
"""

from keras import ops

from layers import vision_utils
from layers.image_attention import ImageAttentionBase


class ChannelGateBase(ImageAttentionBase):
    """Base of the per-channel gating blocks (not registered itself).

    Subclasses set `self.gate` and `self.data_format` and implement
    `_channel_logits(inputs) -> [B, C]`.

    Call arguments:
        inputs: images `[B, H, W, C]` (or `[B, C, H, W]`).
        return_attention_scores: if `True`, also return the channel gate.

    Returns:
        The rescaled images, same shape as `inputs`; with
        `return_attention_scores=True`, a tuple `(outputs, gate)` where
        `gate` is `[B, 1, 1, C]` (`[B, C, 1, 1]` for channels_first), values
        in `[0, 1]`.
    """

    def _channel_logits(self, inputs):
        raise NotImplementedError

    def channel_gate(self, inputs):
        """Returns the gate, broadcastable to `inputs`, without applying it."""
        weights = vision_utils.apply_gate(
            self._channel_logits(inputs), self.gate, self.compute_dtype
        )
        # [B, C] -> [B, 1, 1, C] (channels_last) or [B, C, 1, 1].
        if self.data_format == "channels_last":
            return ops.expand_dims(ops.expand_dims(weights, 1), 1)
        return ops.expand_dims(ops.expand_dims(weights, -1), -1)

    def call(self, inputs, return_attention_scores=False):
        gate = self.channel_gate(inputs)
        return self.with_scores(inputs * gate, gate, return_attention_scores)

    def attention_scores_shape(self, input_shape):
        channels = input_shape[vision_utils.channel_axis(self.data_format)]
        return vision_utils.channel_gate_shape(
            input_shape[0], channels, self.data_format
        )
