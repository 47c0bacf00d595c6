"""The parameter-free "option A" shortcut of CIFAR ResNets (He et al. 2016).

He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition",
section 4.2: when a stage halves the resolution and doubles the width, the
shortcut subsamples the input and pads the new channels with zeros, so the
CIFAR ResNets keep their parameter counts (ResNet-20: 0.27M).
"""

import keras
from keras import ops

from layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="attention_zoo")
class ZeroPadShortcut(keras.layers.Layer):
    """Identity shortcut that subsamples space and zero-pads channels.

    Reference: He et al. 2016, "Deep Residual Learning for Image
    Recognition" (CIFAR-10 experiments, option A).

    Args:
        filters: number of output channels, at least the input's.
        strides: spatial subsampling factor (1 or 2 in CIFAR ResNets).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `[B, H, W, C]` feature map (channels last).

    Returns:
        `[B, ceil(H / strides), ceil(W / strides), filters]` tensor: the
        input's strided pixels, its channels followed by zeros.

    Example:
    >>> import numpy as np
    >>> layer = ZeroPadShortcut(filters=32, strides=2)
    >>> tuple(layer(np.ones((2, 8, 8, 16), "float32")).shape)
    (2, 4, 4, 32)
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("filters", filters)
        check_positive_int("strides", strides)
        self.filters = filters
        self.strides = strides

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels > self.filters:
            raise ValueError(
                f"ZeroPadShortcut cannot shrink {channels} channels to "
                f"`filters`={self.filters}. Received: input_shape="
                f"{tuple(input_shape)}"
            )

    def call(self, inputs):
        x = inputs[:, :: self.strides, :: self.strides, :]
        extra = self.filters - int(inputs.shape[-1])
        # Pad the new channels evenly on both sides, as the reference code.
        before = extra // 2
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, extra - before]])

    def compute_output_shape(self, input_shape):
        def reduce(dim):
            return None if dim is None else -(-dim // self.strides)

        return (
            input_shape[0],
            reduce(input_shape[1]),
            reduce(input_shape[2]),
            self.filters,
        )

    def get_config(self):
        config = {"filters": self.filters, "strides": self.strides}
        return {**super().get_config(), **config}
