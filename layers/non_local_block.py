"""Non-local block for images (Wang, Girshick, Gupta & He 2018)."""

import math

import keras
from keras import ops

from layers import vision_utils
from layers.image_attention import ImageAttentionBase
from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.masking import masked_softmax
from layers.validation import check_choice
from layers.validation import check_positive_int

MODES = ("embedded_gaussian", "dot", "concat", "gaussian")


def _ceil_div(size, step):
    return None if size is None else -(-int(size) // step)


@keras.saving.register_keras_serializable(package="attention_zoo")
class NonLocalBlock(ImageAttentionBase):
    """Non-local block: every position attends to every (pooled) position.

    `z_i = W_z y_i + x_i` with `y_i = sum_j f(x_i, x_j) g(x_j) / C(x)`, where
    `g`, `theta`, `phi` and `W_z` are 1x1 convolutions (`theta`, `phi`, `g`
    reduce to `hidden_channels`, `W_z` restores the channel count). The
    pairwise function `f` and normaliser `C` are set by `mode`:

    - `"embedded_gaussian"`: `f = exp(theta_i . phi_j)`, normalised by its
      sum over `j` -- a softmax.
    - `"gaussian"`: `f = exp(x_i . x_j)` on the raw features (no
      `theta`/`phi` embeddings), softmax-normalised.
    - `"dot"`: `f = theta_i . phi_j`, divided by the number of keys `N`.
    - `"concat"`: `f = relu(w_f . [theta_i, phi_j])`, divided by `N`.

    Relation to self-attention: in `"embedded_gaussian"` mode the block is
    single-head (unscaled) dot-product self-attention over the `H * W`
    positions, with `theta`, `phi` and `g` as the query, key and value
    projections and `W_z` as the output projection, plus a residual
    connection (set `use_scale=True` for the Transformer's
    `1/sqrt(d)` scaling). Unlike a Transformer layer it has no heads, no
    position encoding and no feed-forward part.

    With `sub_sample=True` the keys and values (`phi`, `g`) are max-pooled
    by `pool_size` ("same" padding), which cuts the cost of the `[HW, HW']`
    affinity by `pool_size**2` as in the paper.

    The residual branch starts at zero (`zero_init=True`: `W_z` initialised
    to zeros, or the scale of the batch normalisation after it when
    `use_batch_norm=True`, as in the paper), so a fresh block is the
    identity and can be inserted into a pre-trained network.

    References:
        Wang, Girshick, Gupta & He 2018, "Non-local Neural Networks" (CVPR).

    Args:
        channels: expected number of input channels, or `None` to infer it.
        mode: pairwise function, one of `"embedded_gaussian"` (default),
            `"dot"`, `"concat"`, `"gaussian"`.
        reduction: bottleneck ratio: `hidden_channels = channels //
            reduction` (paper: 2); must not exceed the channel count.
        hidden_channels: explicit bottleneck width (overrides `reduction`).
        min_channels: lower bound of the bottleneck width.
        sub_sample: max-pool keys and values by `pool_size`.
        pool_size: pooling window and stride used when `sub_sample=True`.
        use_scale: divide the logits by `sqrt(d)` (softmax modes only).
        use_batch_norm: batch normalisation after `W_z` (as in the paper).
        zero_init: start the residual branch at zero (identity block).
        data_format: `"channels_last"` (default) or `"channels_first"`.
        kernel_initializer: initializer of `theta`, `phi`, `g` (and `W_z`
            when `zero_init=False`).
        kernel_regularizer: optional regularizer of all kernels.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: images `[B, H, W, C]` (or `[B, C, H, W]`).
        return_attention_scores: if `True`, also return the affinity.
        training: Python bool, used by the optional batch normalisation.

    Returns:
        `[B, H, W, C]` (input shape); with `return_attention_scores=True`, a
        tuple `(outputs, affinity)` where `affinity` is `[B, H*W, H'*W']`
        (`H' = ceil(H / pool_size)` when sub-sampling, else `H`): the
        normalised weights `f / C(x)` of each query position (row-major
        over `H, W`) over the key positions.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> block = NonLocalBlock(sub_sample=True)
    >>> y, affinity = block(x, return_attention_scores=True)
    >>> tuple(affinity.shape)
    (2, 64, 16)
    >>> bool(keras.ops.all(y == x))  # zero-initialised: identity at start
    True
    """

    def __init__(
        self,
        channels=None,
        mode="embedded_gaussian",
        reduction=2,
        hidden_channels=None,
        min_channels=1,
        sub_sample=False,
        pool_size=2,
        use_scale=False,
        use_batch_norm=False,
        zero_init=True,
        data_format="channels_last",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("channels", channels, allow_none=True)
        check_choice("mode", mode, MODES)
        check_positive_int("reduction", reduction)
        check_positive_int("hidden_channels", hidden_channels, allow_none=True)
        check_positive_int("min_channels", min_channels)
        if hidden_channels is None:
            vision_utils.check_reduction(channels, reduction)
        check_positive_int("pool_size", pool_size)
        if use_scale and mode not in ("embedded_gaussian", "gaussian"):
            raise ValueError(
                "`use_scale` only applies to the softmax modes "
                "('embedded_gaussian', 'gaussian'). "
                f"Received: use_scale={use_scale!r} with mode={mode!r}"
            )
        self.channels = channels
        self.mode = mode
        self.reduction = reduction
        self.hidden_channels = hidden_channels
        self.min_channels = min_channels
        self.sub_sample = sub_sample
        self.pool_size = pool_size
        self.use_scale = use_scale
        self.use_batch_norm = use_batch_norm
        self.zero_init = zero_init
        self.data_format = vision_utils.check_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _projection(self, units, name, initializer=None):
        # A 1x1 convolution is a dense layer over the channel axis.
        return keras.layers.Dense(
            units,
            kernel_initializer=clone_initializer(
                initializer or self.kernel_initializer
            ),
            bias_initializer="zeros",
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        name = type(self).__name__
        vision_utils.check_image_shape(input_shape, name, self.data_format)
        channels = vision_utils.resolve_channels(
            self.channels, input_shape, self.data_format, name
        )
        hidden = vision_utils.hidden_width(
            channels, self.reduction, self.hidden_channels, self.min_channels
        )
        self._hidden = hidden
        batch, height, width, _ = vision_utils.nhwc_shape(
            input_shape, self.data_format
        )
        image = (batch, height, width, channels)
        self.g = self._projection(hidden, "g")
        self.g.build(image)
        self.theta = self.phi = None
        if self.mode != "gaussian":
            self.theta = self._projection(hidden, "theta")
            self.theta.build(image)
            self.phi = self._projection(hidden, "phi")
            self.phi.build(image)
        if self.mode == "concat":
            # w_f of the paper: [theta_i, phi_j] (2 * hidden) -> 1, no bias.
            self.concat_kernel = self.add_weight(
                name="concat_kernel",
                shape=(2 * hidden,),
                initializer=keras.initializers.RandomNormal(
                    stddev=1.0 / math.sqrt(2 * hidden)
                ),
                regularizer=self.kernel_regularizer,
            )
        self.pool = None
        if self.sub_sample:
            self.pool = keras.layers.MaxPooling2D(
                self.pool_size,
                padding="same",
                dtype=self.dtype_policy,
                name="pool",
            )
        out_init = (
            "zeros"
            if self.zero_init and not self.use_batch_norm
            else self.kernel_initializer
        )
        self.output_projection = self._projection(
            channels, "output_projection", initializer=out_init
        )
        self.output_projection.build((batch, height, width, hidden))
        self.norm = None
        if self.use_batch_norm:
            self.norm = keras.layers.BatchNormalization(
                gamma_initializer="zeros" if self.zero_init else "ones",
                dtype=self.dtype_policy,
                name="norm",
            )
            self.norm.build(image)

    def _flatten_positions(self, x):
        # [B, H, W, D] -> [B, H*W, D]
        return ops.reshape(x, (ops.shape(x)[0], -1, ops.shape(x)[-1]))

    def affinity(self, x):
        """Returns `(affinity [B, HW, HW'], values [B, HW', hidden])`.

        `x` is channels_last. The affinity is float32.
        """
        if self.mode == "gaussian":
            query, key = x, x
        else:
            query, key = self.theta(x), self.phi(x)
        value = self.g(x)
        if self.pool is not None:
            key, value = self.pool(key), self.pool(value)
        query = ops.cast(self._flatten_positions(query), "float32")
        key = ops.cast(self._flatten_positions(key), "float32")
        value = self._flatten_positions(value)
        if self.mode == "concat":
            hidden = self._hidden
            kernel = ops.cast(self.concat_kernel, "float32")
            # relu(w_q . theta_i + w_k . phi_j): [B, N, 1] + [B, 1, M]
            from_query = ops.matmul(query, kernel[:hidden])
            from_key = ops.matmul(key, kernel[hidden:])
            logits = ops.relu(
                ops.expand_dims(from_query, -1) + ops.expand_dims(from_key, -2)
            )
        else:
            logits = ops.einsum("bnd,bmd->bnm", query, key)
        if self.mode in ("embedded_gaussian", "gaussian"):
            if self.use_scale:
                logits = logits / math.sqrt(int(query.shape[-1]))
            weights = masked_softmax(logits)
        else:
            num_keys = ops.cast(ops.shape(key)[1], "float32")
            weights = logits / num_keys
        return weights, value

    def call(self, inputs, return_attention_scores=False, training=None):
        x = vision_utils.to_channels_last(inputs, self.data_format)
        weights, value = self.affinity(x)
        weights = ops.cast(weights, self.compute_dtype)
        context = ops.matmul(weights, value)  # [B, HW, hidden]
        shape = ops.shape(x)
        context = ops.reshape(context, (*shape[:-1], self._hidden))
        residual = self.output_projection(context)
        if self.norm is not None:
            residual = self.norm(residual, training=training)
        outputs = vision_utils.from_channels_last(
            x + residual, self.data_format
        )
        return self.with_scores(outputs, weights, return_attention_scores)

    def attention_scores_shape(self, input_shape):
        batch, height, width, _ = vision_utils.nhwc_shape(
            input_shape, self.data_format
        )
        queries = None if None in (height, width) else height * width
        if self.sub_sample:
            height = _ceil_div(height, self.pool_size)
            width = _ceil_div(width, self.pool_size)
        keys = None if None in (height, width) else height * width
        return (batch, queries, keys)

    def get_config(self):
        config = {
            "channels": self.channels,
            "mode": self.mode,
            "reduction": self.reduction,
            "hidden_channels": self.hidden_channels,
            "min_channels": self.min_channels,
            "sub_sample": self.sub_sample,
            "pool_size": self.pool_size,
            "use_scale": self.use_scale,
            "use_batch_norm": self.use_batch_norm,
            "zero_init": self.zero_init,
            "data_format": self.data_format,
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
