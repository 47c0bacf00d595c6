"""Private helpers shared by the vision attention blocks (validation, gates).

Every image block validates its arguments and inputs through these helpers so
that the error messages and the `channels_last`/`channels_first` handling are
the same everywhere.
"""

import keras
from keras import ops

DATA_FORMATS = ("channels_last", "channels_first")
GATES = ("sigmoid", "hard_sigmoid")


def check_positive_int(name, value, allow_none=False):
    """Returns `value` or raises `ValueError` unless it is an int >= 1."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer"
            f"{' or None' if allow_none else ''}. Received: {name}={value!r}"
        )
    return value


def check_rate(name, value):
    """Returns `value` or raises `ValueError` unless `0 <= value < 1`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    return value


def check_odd_kernel_size(name, value):
    """Returns `value` or raises `ValueError` unless it is an odd int >= 1.

    Odd sizes keep `"same"` padding symmetric, so each output position is
    centred on its input position.
    """
    check_positive_int(name, value)
    if value % 2 == 0:
        raise ValueError(
            f"`{name}` must be an odd positive integer (so the kernel is "
            f"centred on each position). Received: {name}={value!r}"
        )
    return value


def check_data_format(data_format):
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be one of {DATA_FORMATS}. "
            f"Received: data_format={data_format!r}"
        )
    return data_format


def check_gate(gate):
    if gate not in GATES:
        raise ValueError(
            f"`gate` must be one of {GATES}. Received: gate={gate!r}"
        )
    return gate


def get_activation(name, value):
    """Resolves an activation, raising `ValueError` naming the argument."""
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{name}` must name a Keras activation. Received: {name}={value!r}"
        ) from err


def serialize_activation(fn):
    return keras.activations.serialize(fn)


def check_rank(input_shape, rank, layer_name, what):
    """Raises `ValueError` unless `input_shape` has the given rank."""
    shape = tuple(input_shape)
    if len(shape) != rank:
        raise ValueError(
            f"{layer_name} expects {what} (a rank-{rank} tensor). "
            f"Received: inputs.shape={shape}"
        )
    return shape


def check_image_shape(input_shape, layer_name, data_format):
    layout = (
        "[B, H, W, C]" if data_format == "channels_last" else "[B, C, H, W]"
    )
    return check_rank(input_shape, 4, layer_name, f"images {layout}")


def channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def spatial_axes(data_format):
    return (1, 2) if data_format == "channels_last" else (2, 3)


def resolve_channels(declared, input_shape, data_format, layer_name):
    """Returns the (static) channel count of `input_shape`.

    Raises `ValueError` if it is unknown or differs from `declared`.
    """
    channels = input_shape[channel_axis(data_format)]
    if channels is None:
        raise ValueError(
            f"{layer_name} needs a known channel dimension. "
            f"Received: inputs.shape={tuple(input_shape)}"
        )
    channels = int(channels)
    if declared is not None and declared != channels:
        raise ValueError(
            f"{layer_name} was constructed with channels={declared} but "
            f"received inputs with {channels} channels. "
            f"Received: inputs.shape={tuple(input_shape)}"
        )
    return channels


def check_reduction(channels, reduction):
    if reduction is not None and channels is not None and reduction > channels:
        raise ValueError(
            f"`reduction` must not exceed the number of channels "
            f"({channels}). Received: reduction={reduction}"
        )


def hidden_width(channels, reduction, hidden_channels, min_channels):
    """Bottleneck width: `hidden_channels` or `max(min, channels // r)`."""
    if hidden_channels is not None:
        return hidden_channels
    check_reduction(channels, reduction)
    return max(min_channels, channels // reduction)


def apply_gate(logits, gate, dtype):
    """Squashes `logits` to `[0, 1]` in float32, returns them in `dtype`."""
    logits = ops.cast(logits, "float32")
    if gate == "sigmoid":
        weights = ops.sigmoid(logits)
    else:
        # hard_sigmoid(x) = clip(x / 6 + 1 / 2, 0, 1), as in MobileNetV3.
        weights = ops.hard_sigmoid(logits)
    return ops.cast(weights, dtype)


def channel_gate_shape(batch, channels, data_format):
    """Shape of a per-channel gate broadcastable to the input images."""
    if data_format == "channels_last":
        return (batch, 1, 1, channels)
    return (batch, channels, 1, 1)


def to_channels_last(x, data_format):
    # TensorFlow's CPU kernels only convolve NHWC, so channels_first blocks
    # run their convolutions on transposed tensors.
    if data_format == "channels_first":
        return ops.transpose(x, (0, 2, 3, 1))
    return x


def from_channels_last(x, data_format):
    if data_format == "channels_first":
        return ops.transpose(x, (0, 3, 1, 2))
    return x


def nhwc_shape(input_shape, data_format):
    shape = tuple(input_shape)
    if data_format == "channels_first":
        return (shape[0], shape[2], shape[3], shape[1])
    return shape
