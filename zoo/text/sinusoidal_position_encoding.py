"""Fixed sinusoidal position encodings (Vaswani et al. 2017, §3.5)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="attention_zoo")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Adds the fixed sine/cosine position encodings of the Transformer.

    Vaswani et al. 2017, "Attention Is All You Need", §3.5:
    `PE[t, 2i] = sin(t / base^(2i / D))`, `PE[t, 2i + 1] = cos(...)`. No
    weights, any sequence length; masks pass through unchanged.

    Args:
        base: the wavelength base (10,000 in the paper).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[B, T, D]` token embeddings (`D` known and even).

    Returns:
        `inputs + PE[:T]`, same shape.

    Example:

    >>> x = keras.ops.zeros((1, 3, 4))
    >>> y = SinusoidalPositionEncoding()(x)
    >>> [round(float(v), 3) for v in y[0, 1]]
    [0.841, 0.54, 0.01, 1.0]
    """

    def __init__(self, base=10000.0, **kwargs):
        super().__init__(**kwargs)
        if (
            isinstance(base, bool)
            or not isinstance(base, (int, float))
            or (base <= 1)
        ):
            raise ValueError(
                f"`base` must be a number > 1. Received: base={base!r}"
            )
        self.base = float(base)
        self.supports_masking = True

    def build(self, input_shape):
        if (
            len(input_shape) != 3
            or input_shape[-1] is None
            or (input_shape[-1] % 2)
        ):
            raise ValueError(
                "`SinusoidalPositionEncoding` expects [batch, steps, "
                "features] with an even, known number of features. "
                f"Received: inputs.shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        steps, dim = ops.shape(inputs)[1], inputs.shape[-1]
        positions = ops.cast(ops.arange(steps), "float32")[:, None]  # [T, 1]
        rates = ops.exp(
            ops.arange(0, dim, 2, dtype="float32")
            * (-math.log(self.base) / dim)
        )  # [D / 2]
        angles = positions * rates[None]  # [T, D / 2]
        # Interleave: [sin, cos] per frequency -> [T, D].
        table = ops.reshape(
            ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1),
            (steps, dim),
        )
        return inputs + ops.cast(table, inputs.dtype)[None]

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "base": self.base}
