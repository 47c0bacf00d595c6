"""Shared stem and head of the image models: uint8 pixels in, scaled
inside; class probabilities out."""

import keras

from layers import PatchEmbedding
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


def patch_tokens(input_shape, num_classes, patch_size, embed_dim):
    """Returns `(inputs, tokens)`: uint8 images cut into embedded patches.

    The stem of the patch models (ViT, MLP-Mixer, gMLP): `image_inputs`,
    then a `PatchEmbedding` to `[B, N, embed_dim]` tokens, `N` the number
    of `patch_size x patch_size` patches.

    Raises:
        ValueError: `patch_size` does not tile the image, or the
            arguments of `image_inputs` are malformed.
    """
    check_patch_size(input_shape, patch_size)
    inputs, x = image_inputs(input_shape, num_classes)
    tokens = PatchEmbedding(embed_dim, patch_size, name="patch_embedding")(x)
    return inputs, tokens


def class_probabilities(x, num_classes):
    """The classifier every image model ends in: a linear layer, then a
    float32 softmax (also under mixed precision)."""
    x = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.layers.Activation(
        "softmax", dtype="float32", name="probabilities"
    )(x)


def token_classifier(inputs, tokens, num_classes, name, pool="mean"):
    """The head of the patch models as a `keras.Model` named `name`.

    A final LayerNorm over `tokens` `[B, N, D]`, then `pool` (`"mean"`:
    global average over the tokens; `"class_token"`: the first token),
    then `class_probabilities`.
    """
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(tokens)
    if pool == "class_token":
        x = x[:, 0]  # a serialisable GetItem op, no Lambda
    else:
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, class_probabilities(x, num_classes), name=name)
