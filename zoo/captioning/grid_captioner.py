"""Captioners over a CNN's grid of annotation vectors (Xu et al. 2015).

Show, Attend and Tell's encoder: a small VGG-style CNN whose `h x w`
feature map gives `L = h * w` annotation vectors, each describing one
region of the image (Xu et al. 2015, §3.1.1), and `GridCaptioner`, the
base of the captioners that attend over them.
"""

import keras

from layers.validation import check_positive_int
from zoo.captioning.captioner import Captioner


def _check_shape(input_shape):
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive "
            f"integers. Received: input_shape={input_shape!r}"
        )
    return shape


def _check_filters(filters):
    filters = tuple(filters)
    if not filters or not all(
        isinstance(f, int) and not isinstance(f, bool) and f > 0
        for f in filters
    ):
        raise ValueError(
            "`encoder_filters` must be a non-empty list of positive "
            f"integers. Received: encoder_filters={filters!r}"
        )
    return filters


def check_encoder(input_shape, encoder_filters, convs_per_stage):
    """Validated `(input_shape, encoder_filters)` of `cnn_encoder` (tuples);
    `ValueError` naming the bad argument otherwise."""
    input_shape = _check_shape(input_shape)
    encoder_filters = _check_filters(encoder_filters)
    check_positive_int("convs_per_stage", convs_per_stage)
    annotation_grid(input_shape, encoder_filters)
    return input_shape, encoder_filters


def annotation_grid(input_shape, encoder_filters):
    """`(rows, cols)` of `cnn_encoder`'s feature map (each stage halves)."""
    stages = len(encoder_filters)
    rows = input_shape[0] // 2**stages
    cols = input_shape[1] // 2**stages
    if rows < 1 or cols < 1:
        raise ValueError(
            f"{stages} pooling stages shrink a {input_shape[0]}x"
            f"{input_shape[1]} image to nothing: use fewer "
            f"encoder_filters or larger images. Received: "
            f"input_shape={input_shape}, encoder_filters={encoder_filters}"
        )
    return rows, cols


def cnn_encoder(input_shape, filters, convs_per_stage, name="encoder"):
    """Small VGG-style CNN: per stage `convs_per_stage` 3x3 conv-BN-ReLU
    layers, then 2x2 max pooling; returns the feature map `[h, w, D]`
    (`h = H / 2^stages`) as a `keras.Sequential` taking uint8 images."""
    stack = [
        keras.Input(input_shape, dtype="uint8", name="images"),
        keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale"),
    ]
    for stage, width in enumerate(filters, start=1):
        for i in range(1, convs_per_stage + 1):
            stack += [
                keras.layers.Conv2D(
                    width,
                    3,
                    padding="same",
                    use_bias=False,
                    name=f"stage{stage}_conv{i}",
                ),
                keras.layers.BatchNormalization(name=f"stage{stage}_bn{i}"),
                keras.layers.ReLU(name=f"stage{stage}_relu{i}"),
            ]
        stack.append(keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool"))
    return keras.Sequential(stack, name=name)


class GridCaptioner(Captioner):
    """A `Captioner` whose encoder is `cnn_encoder`.

    Subclasses call `build_encoder` in their constructor (before
    `super().__init__`) and read the annotation vectors `[B, L, D]` of a
    batch of uint8 images with `annotations`; this base reports the
    `feature_grid` and writes the encoder's arguments (`input_shape`,
    `encoder_filters`, `convs_per_stage`) into the config.

    Args:
        **kwargs: `Captioner` arguments.
    """

    def build_encoder(self, input_shape, encoder_filters, convs_per_stage):
        """Checks the encoder arguments and makes its layers (`encoder`,
        `to_annotations`).

        Returns:
            The checked `input_shape`, a tuple.

        Raises:
            ValueError: naming a bad argument (see `check_encoder`).
        """
        input_shape, encoder_filters = check_encoder(
            input_shape, encoder_filters, convs_per_stage
        )
        rows, cols = annotation_grid(input_shape, encoder_filters)
        self.encoder = cnn_encoder(
            input_shape, encoder_filters, convs_per_stage
        )
        self.to_annotations = keras.layers.Reshape(
            (rows * cols, encoder_filters[-1]), name="annotations"
        )
        self.image_shape = input_shape
        self.encoder_filters = encoder_filters
        self.convs_per_stage = convs_per_stage
        self._grid = (rows, cols)
        return input_shape

    def annotations(self, images, training=None):
        """The annotation vectors `[B, rows * cols, D]` of uint8 images."""
        return self.to_annotations(self.encoder(images, training=training))

    @property
    def feature_grid(self):
        return self._grid

    def get_config(self):
        return {
            **super().get_config(),
            "input_shape": list(self.image_shape),
            "encoder_filters": list(self.encoder_filters),
            "convs_per_stage": self.convs_per_stage,
        }
