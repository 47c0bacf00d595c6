"""ViT patch embedding (Dosovitskiy et al. 2021, "An Image is Worth 16x16
Words")."""

import keras
from keras import ops

from layers import vision_utils
from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.validation import check_positive_int


def _pair(name, received):
    value = received
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0
            for v in value
        )
    ):
        raise ValueError(
            f"`{name}` must be a positive integer or a pair of positive "
            f"integers. Received: {name}={received!r}"
        )
    return tuple(value)


@keras.saving.register_keras_serializable(package="attention_zoo")
class PatchEmbedding(keras.layers.Layer):
    """Splits images into non-overlapping patches and embeds each linearly.

    Implemented, as in ViT, as one convolution with `kernel_size = strides =
    patch_size` and "valid" padding, so an `[H, W]` image becomes
    `(H / p) * (W / p)` tokens of width `embed_dim` (row-major over the
    patch grid). The image size must be divisible by the patch size.

    References:
        Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words:
        Transformers for Image Recognition at Scale" (ICLR).

    Args:
        embed_dim: width `D` of each patch token.
        patch_size: patch side `p`, or a pair `(p_h, p_w)`.
        flatten: return tokens `[B, N, D]` (default) or the grid
            `[B, H/p, W/p, D]`.
        use_bias: whether the projection has a bias.
        data_format: `"channels_last"` (default) or `"channels_first"` for
            the input images; the output is always channels-last tokens.
        kernel_initializer: initializer of the projection kernel.
        kernel_regularizer: optional regularizer of the projection kernel.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: images `[B, H, W, C]` (or `[B, C, H, W]`).

    Returns:
        `[B, (H / p_h) * (W / p_w), D]`, or `[B, H / p_h, W / p_w, D]` when
        `flatten=False`.

    Example:

    >>> images = keras.random.normal((2, 32, 32, 3))
    >>> tokens = PatchEmbedding(embed_dim=64, patch_size=8)(images)
    >>> tuple(tokens.shape)
    (2, 16, 64)
    """

    def __init__(
        self,
        embed_dim,
        patch_size=16,
        flatten=True,
        use_bias=True,
        data_format="channels_last",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embed_dim = check_positive_int("embed_dim", embed_dim)
        self._patch = _pair("patch_size", patch_size)
        self.patch_size = patch_size
        self.flatten = flatten
        self.use_bias = use_bias
        self.data_format = vision_utils.check_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        vision_utils.check_image_shape(
            input_shape, "PatchEmbedding", self.data_format
        )
        shape = vision_utils.nhwc_shape(input_shape, self.data_format)
        for size, patch in zip(shape[1:3], self._patch):
            if size is not None and size % patch:
                raise ValueError(
                    "PatchEmbedding needs image height and width divisible "
                    f"by the patch size. Received: patch_size="
                    f"{self.patch_size!r} and inputs.shape="
                    f"{tuple(input_shape)}"
                )
        if shape[-1] is None:
            raise ValueError(
                "PatchEmbedding needs a known channel dimension. "
                f"Received: inputs.shape={tuple(input_shape)}"
            )
        self.projection = keras.layers.Conv2D(
            self.embed_dim,
            self._patch,
            strides=self._patch,
            padding="valid",
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="projection",
        )
        self.projection.build(shape)

    def call(self, inputs):
        x = vision_utils.to_channels_last(inputs, self.data_format)
        grid = self.projection(x)  # [B, H/p, W/p, D]
        if not self.flatten:
            return grid
        return ops.reshape(grid, (ops.shape(grid)[0], -1, self.embed_dim))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = vision_utils.nhwc_shape(
            input_shape, self.data_format
        )
        rows = None if height is None else height // self._patch[0]
        cols = None if width is None else width // self._patch[1]
        if not self.flatten:
            return (batch, rows, cols, self.embed_dim)
        tokens = None if None in (rows, cols) else rows * cols
        return (batch, tokens, self.embed_dim)

    def get_config(self):
        config = {
            "embed_dim": self.embed_dim,
            "patch_size": self.patch_size,
            "flatten": self.flatten,
            "use_bias": self.use_bias,
            "data_format": self.data_format,
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
