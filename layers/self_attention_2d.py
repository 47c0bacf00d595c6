"""Multi-head self-attention over feature-map positions (BoTNet, Srinivas et
al. 2021), built on the project's sequence `MultiHeadAttention`."""

import keras
from keras import ops

from layers import vision_utils
from layers.image_attention import ImageAttentionBase
from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.multi_head_attention import MultiHeadAttention
from layers.validation import check_choice
from layers.validation import check_positive_int
from layers.validation import check_rate

POSITION_ENCODINGS = ("absolute", None)


@keras.saving.register_keras_serializable(package="attention_zoo")
class SelfAttention2D(ImageAttentionBase):
    """Multi-head self-attention over the `H * W` positions of a feature map.

    The map is flattened row-major into `H * W` tokens of `C` features and
    passed to `layers.MultiHeadAttention` (scaled dot-product attention,
    `num_heads` heads, output projected back to `C` channels), then reshaped
    back to `[B, H, W, C]`. As in BoTNet's MHSA it replaces a spatial
    convolution: there is no residual connection inside the block.

    Position encodings (`position_encoding="absolute"`, default): learned,
    factorised 2-D embeddings `P[h, w] = row[h] + column[w]` (`[H, C]` and
    `[W, C]` tables), added to the keys' input only, so the logits gain
    BoTNet's content-position term `q_i . W_k P_j` while the values stay
    content-only. The map size `H x W` is then fixed at build time.
    `position_encoding=None` gives plain, permutation-equivariant
    self-attention over positions and accepts any map size.

    BoTNet's relative variant (`q_i . r_{j - i}`) needs an additive logit
    bias that `MultiHeadAttention` does not take; it is not offered.

    References:
        Srinivas, Lin, Parmar, Shlens, Abbeel & Vaswani 2021, "Bottleneck
        Transformers for Visual Recognition" (CVPR); Vaswani et al. 2017,
        "Attention Is All You Need".

    Args:
        channels: expected number of input channels, or `None` to infer it.
        num_heads: number of attention heads (BoTNet: 4).
        key_dim: size of each query/key head; `None` gives
            `channels // num_heads` (at least 1).
        value_dim: size of each value head; `None` gives `key_dim`.
        position_encoding: `"absolute"` (learned 2-D, see above) or `None`.
        dropout: dropout rate on the attention weights.
        use_bias: whether the projections have biases.
        data_format: `"channels_last"` (default) or `"channels_first"`.
        kernel_initializer: initializer of the projection kernels.
        kernel_regularizer: optional regularizer of the projection kernels.
        position_initializer: initializer of the position tables (default:
            truncated normal, stddev 0.02).
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: feature maps `[B, H, W, C]` (or `[B, C, H, W]`).
        return_attention_scores: if `True`, also return the attention
            weights.
        training: Python bool, enables attention dropout.

    Returns:
        `[B, H, W, C]` (the input shape); with
        `return_attention_scores=True`, a tuple `(outputs, scores)` where
        `scores` is `[B, num_heads, H*W, H*W]`: each head's softmax weights
        of every query position over every key position (row-major).

    Example:

    >>> x = keras.random.normal((2, 4, 4, 32))
    >>> mhsa = SelfAttention2D(num_heads=4)
    >>> y, scores = mhsa(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(scores.shape)
    ((2, 4, 4, 32), (2, 4, 16, 16))
    """

    def __init__(
        self,
        channels=None,
        num_heads=4,
        key_dim=None,
        value_dim=None,
        position_encoding="absolute",
        dropout=0.0,
        use_bias=False,
        data_format="channels_last",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        position_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("channels", channels, allow_none=True)
        check_positive_int("num_heads", num_heads)
        check_positive_int("key_dim", key_dim, allow_none=True)
        check_positive_int("value_dim", value_dim, allow_none=True)
        check_choice("position_encoding", position_encoding, POSITION_ENCODINGS)
        self.channels = channels
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.position_encoding = position_encoding
        self.dropout = check_rate("dropout", dropout)
        self.use_bias = use_bias
        self.data_format = vision_utils.check_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.position_initializer = keras.initializers.get(
            position_initializer
            or keras.initializers.TruncatedNormal(stddev=0.02)
        )

    def build(self, input_shape):
        name = type(self).__name__
        vision_utils.check_image_shape(input_shape, name, self.data_format)
        channels = vision_utils.resolve_channels(
            self.channels, input_shape, self.data_format, name
        )
        _, height, width, _ = vision_utils.nhwc_shape(
            input_shape, self.data_format
        )
        self.row_embedding = self.column_embedding = None
        if self.position_encoding == "absolute":
            if height is None or width is None:
                raise ValueError(
                    f"{name} with position_encoding='absolute' needs a "
                    "known feature-map height and width (the position "
                    "tables are learned per row and column). "
                    f"Received: inputs.shape={tuple(input_shape)}"
                )
            self.row_embedding = self.add_weight(
                name="row_embedding",
                shape=(height, channels),
                initializer=clone_initializer(self.position_initializer),
            )
            self.column_embedding = self.add_weight(
                name="column_embedding",
                shape=(width, channels),
                initializer=clone_initializer(self.position_initializer),
            )
            axes = {vision_utils.channel_axis(self.data_format) % 4: channels}
            spatial = vision_utils.spatial_axes(self.data_format)
            axes.update({spatial[0]: height, spatial[1]: width})
            self.input_spec = keras.InputSpec(ndim=4, axes=axes)
        key_dim = self.key_dim or max(1, channels // self.num_heads)
        self.attention = MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            value_dim=self.value_dim,
            dropout=self.dropout,
            use_bias=self.use_bias,
            output_shape=channels,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="attention",
        )
        tokens = None if None in (height, width) else height * width
        token_shape = (None, tokens, channels)
        self.attention.build(token_shape, token_shape, token_shape)

    def position_encodings(self):
        """The `[H, W, C]` learned encodings, or `None`."""
        if self.row_embedding is None:
            return None
        return ops.expand_dims(self.row_embedding, 1) + ops.expand_dims(
            self.column_embedding, 0
        )

    def call(self, inputs, return_attention_scores=False, training=None):
        x = vision_utils.to_channels_last(inputs, self.data_format)
        shape = ops.shape(x)
        # [B, H, W, C] -> [B, H*W, C], row-major over (H, W).
        tokens = ops.reshape(x, (shape[0], -1, shape[-1]))
        keys = None
        positions = self.position_encodings()
        if positions is not None:
            positions = ops.cast(positions, tokens.dtype)
            keys = tokens + ops.reshape(positions, (1, -1, shape[-1]))
        result = self.attention(
            tokens,
            tokens,
            key=keys,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        outputs, scores = result if return_attention_scores else (result, None)
        outputs = ops.reshape(outputs, shape)
        outputs = vision_utils.from_channels_last(outputs, self.data_format)
        return self.with_scores(outputs, scores, return_attention_scores)

    def attention_scores_shape(self, input_shape):
        batch, height, width, _ = vision_utils.nhwc_shape(
            input_shape, self.data_format
        )
        tokens = None if None in (height, width) else height * width
        return (batch, self.num_heads, tokens, tokens)

    def get_config(self):
        config = {
            "channels": self.channels,
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "position_encoding": self.position_encoding,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "data_format": self.data_format,
            **serialize_weight_args(
                self,
                "kernel_initializer",
                "kernel_regularizer",
                "position_initializer",
            ),
        }
        return {**super().get_config(), **config}
