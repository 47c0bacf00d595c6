"""Learned position embedding with an optional class token (ViT,
Dosovitskiy et al. 2021)."""

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.validation import check_bool
from layers.validation import check_token_shape


@keras.saving.register_keras_serializable(package="attention_zoo")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per token position, optionally after a
    prepended learned class token.

    - `use_class_token=False` (default): `y = x + P`, `P` of shape `[N, D]`;
      the output has the input's shape. Use it when the head pools the
      tokens (global average pooling).
    - `use_class_token=True`: a learned `[CLS]` token is prepended, as in
      ViT and BERT, and `y = [cls; x] + P` with `P` of shape `[N + 1, D]`;
      the output has `N + 1` tokens and the head reads token 0.

    The number of tokens `N` is fixed when the layer is built (the table is
    learned per position); other lengths raise a `ValueError`.

    References:
        Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words:
        Transformers for Image Recognition at Scale" (ICLR), eq. 1.

    Args:
        use_class_token: prepend a learned class token (see above).
        embeddings_initializer: initializer of the position table and the
            class token (ViT: truncated normal, stddev 0.02).
        embeddings_regularizer: optional regularizer of both.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: tokens `[B, N, D]` with `N` and `D` known.

    Returns:
        `[B, N, D]`, or `[B, N + 1, D]` with `use_class_token=True`.

    Example:

    >>> tokens = keras.random.normal((2, 16, 64))
    >>> y = PositionEmbedding(use_class_token=True)(tokens)
    >>> tuple(y.shape)
    (2, 17, 64)
    """

    def __init__(
        self,
        use_class_token=False,
        embeddings_initializer=None,
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.use_class_token = check_bool("use_class_token", use_class_token)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
            or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )

    def build(self, input_shape):
        shape = check_token_shape(
            input_shape, "PositionEmbedding", "tokens [B, N, D]"
        )
        _, tokens, dim = shape
        self.input_spec = keras.InputSpec(ndim=3, axes={1: tokens, 2: dim})
        self.class_token = None
        if self.use_class_token:
            self.class_token = self.add_weight(
                name="class_token",
                shape=(1, 1, dim),
                initializer=clone_initializer(self.embeddings_initializer),
                regularizer=self.embeddings_regularizer,
            )
        self.position_embedding = self.add_weight(
            name="position_embedding",
            shape=(tokens + int(self.use_class_token), dim),
            initializer=clone_initializer(self.embeddings_initializer),
            regularizer=self.embeddings_regularizer,
        )

    def call(self, inputs):
        x = inputs
        if self.class_token is not None:
            batch = ops.shape(inputs)[0]
            cls = ops.broadcast_to(
                ops.cast(self.class_token, inputs.dtype),
                (batch, 1, ops.shape(inputs)[-1]),
            )
            x = ops.concatenate([cls, x], axis=1)
        position = ops.cast(self.position_embedding, inputs.dtype)
        return x + ops.expand_dims(position, 0)

    def compute_output_shape(self, input_shape):
        batch, tokens, dim = tuple(input_shape)
        if self.use_class_token and tokens is not None:
            tokens += 1
        return (batch, tokens, dim)

    def get_config(self):
        config = {
            "use_class_token": self.use_class_token,
            **serialize_weight_args(
                self, "embeddings_initializer", "embeddings_regularizer"
            ),
        }
        return {**super().get_config(), **config}
