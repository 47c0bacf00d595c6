"""Image-layout helpers shared by the vision attention blocks.

Data formats, channel axes, gates and channel-count resolution live here so
that the `channels_last`/`channels_first` handling and the error messages are
the same in every image block (SE, CBAM, ECA, non-local, ...). Argument
validators live in `layers.validation`.
"""

from keras import ops

from layers.validation import check_choice
from layers.validation import check_rank

DATA_FORMATS = ("channels_last", "channels_first")
GATES = ("sigmoid", "hard_sigmoid")


def check_data_format(data_format):
    return check_choice("data_format", data_format, DATA_FORMATS)


def check_gate(gate):
    return check_choice("gate", gate, GATES)


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
