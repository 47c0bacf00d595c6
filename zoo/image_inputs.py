"""Shared input stem of the image models: uint8 pixels in, scaled inside."""

import keras

from layers.validation import check_positive_int


def image_inputs(input_shape, num_classes):
    """Returns `(inputs, x)`: a uint8 `keras.Input` and its scaled floats.

    Every image model takes raw uint8 pixels, so an exported model serves
    them directly; they are mapped to `[-1, 1]` inside the model.

    Args:
        input_shape: `(H, W, C)` of the images.
        num_classes: number of classes (validated here for all models).

    Returns:
        The `keras.Input` and the rescaled float tensor.

    Raises:
        ValueError: on a malformed `input_shape` or `num_classes`.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive "
            f"integers. Received: input_shape={input_shape!r}"
        )
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            "`num_classes` must be an integer >= 2. Received: "
            f"num_classes={num_classes!r}"
        )
    inputs = keras.Input(shape=shape, dtype="uint8", name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    return inputs, x


def check_patch_size(input_shape, patch_size):
    """Raises `ValueError` unless `patch_size` tiles the image exactly."""
    check_positive_int("patch_size", patch_size)
    height, width = tuple(input_shape)[:2]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"Image size {height}x{width} is not divisible by `patch_size`. "
            f"Received: patch_size={patch_size}, input_shape="
            f"{tuple(input_shape)}"
        )
