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


def mean_and_max(x, axis):
    """Mean and maximum of `x` over `axis`, with a lean gradient.

    Returns `(ops.mean(x, axis, keepdims=True), ops.max(x, axis,
    keepdims=True))`: the two descriptors CBAM pools (over channels for its
    spatial map, over positions for its channel gate). Values and gradients
    are those of the two ops (the maximum's gradient is shared equally by
    the elements that reach it); the gradient is computed in three passes
    over `x` (equality with the maximum, its count, one select) instead of
    the eight or so of the two ops' own gradients (tile, equality, cast,
    count, divide, multiply, tile, add), which dominate a CBAM block's
    backward pass on CPU.

    Args:
        x: a tensor.
        axis: an axis or a tuple of axes to reduce.

    Returns:
        `(mean, maximum)`, each shaped like `x` with the reduced axes of
        size 1.
    """
    axes = axis if isinstance(axis, tuple) else (axis,)

    @ops.custom_gradient
    def pool(x):
        mean = ops.mean(x, axis=axes, keepdims=True)
        peak = ops.max(x, axis=axes, keepdims=True)

        def grad(*args, upstream=None):
            if upstream is None:
                upstream = args if len(args) > 1 else args[0]
            d_mean, d_peak = upstream
            d_mean = ops.zeros_like(mean) if d_mean is None else d_mean
            d_peak = ops.zeros_like(peak) if d_peak is None else d_peak
            size = ops.cast(ops.size(x) // ops.size(mean), x.dtype)
            is_peak = ops.equal(x, peak)
            ties = ops.sum(ops.cast(is_peak, x.dtype), axis=axes, keepdims=True)
            base = d_mean / size
            return ops.where(is_peak, base + d_peak / ties, base)

        return (mean, peak), grad

    return pool(x)
