"""The zoo's attention models rebuilt from Keras's own layers only.

The `time_to_accuracy` benchmark trains each of these by the same recipe as
the zoo model it mirrors, to show what using this project's layers saves
over writing the block the obvious way with stock Keras:

- `keras_cbam_resnet20`: the zoo's CIFAR ResNet-20 with `KerasCBAM`, CBAM
  (Woo et al. 2018) as the popular Keras implementations write it: global
  average/max pooling layers, one shared two-layer `Dense` MLP, a
  channel-wise mean/max and a `Conv2D(1, 7, activation="sigmoid")`.
- `keras_bigru_attention`: the zoo's BiGRU classifier whose word attention
  (Yang et al. 2016, `v . tanh(W h + b)`) is `keras.layers.AdditiveAttention`
  with `use_scale=True` (its scale is `v`) over `Dense(units)` keys and a
  zero query, instead of `layers.AttentionPooling1D`.

Both have exactly the parameter count of the zoo model they mirror. They
are registered in the zoo only inside the benchmark's process
(`register()`), so the library's registry never lists them.
"""

import keras
from keras import ops


class KerasCBAM(keras.layers.Layer):
    """CBAM written with stock Keras layers (reference for benchmarks).

    References:
        Woo, Park, Lee & Kweon 2018, "CBAM: Convolutional Block Attention
        Module" (ECCV).

    Args:
        reduction: channel reduction of the shared MLP (width at least 1).
        kernel_size: size of the spatial convolution.
        **kwargs: base `Layer` arguments.
    """

    def __init__(self, reduction=16, kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.kernel_size = kernel_size

    def build(self, input_shape):
        channels = input_shape[-1]
        self.average = keras.layers.GlobalAveragePooling2D(keepdims=True)
        self.maximum = keras.layers.GlobalMaxPooling2D(keepdims=True)
        self.hidden = keras.layers.Dense(
            max(1, channels // self.reduction), activation="relu"
        )
        self.hidden.build((None, 1, 1, channels))
        self.out = keras.layers.Dense(channels)
        self.out.build((None, 1, 1, self.hidden.units))
        self.conv = keras.layers.Conv2D(
            1, self.kernel_size, padding="same", activation="sigmoid"
        )
        self.conv.build((None, None, None, 2))

    def call(self, x):
        average = self.out(self.hidden(self.average(x)))
        maximum = self.out(self.hidden(self.maximum(x)))
        x = x * ops.sigmoid(average + maximum)
        descriptor = ops.concatenate(
            [ops.mean(x, -1, keepdims=True), ops.max(x, -1, keepdims=True)],
            axis=-1,
        )
        return x * self.conv(descriptor)

    def get_config(self):
        return {
            **super().get_config(),
            "reduction": self.reduction,
            "kernel_size": self.kernel_size,
        }


def keras_cbam_resnet20(**kwargs):
    """The zoo's `cbam_resnet20` with `KerasCBAM` blocks."""
    from zoo.resnet import cifar_resnet

    kwargs.setdefault("name", "keras_cbam_resnet20")
    return cifar_resnet(20, attention=KerasCBAM, **kwargs)


def keras_bigru_attention(
    *,
    vocabulary=None,
    max_tokens=20000,
    sequence_length=64,
    num_classes=2,
    embedding_dim=128,
    rnn_units=64,
    attention_units=None,
    embedding_dropout=0.0,
    dropout=0.5,
    name="keras_bigru_attention",
):
    """The zoo's `bigru_attention` with Keras's `AdditiveAttention`."""
    from zoo.text.recurrent_classifier import bigru_encoder
    from zoo.text.recurrent_classifier import embed_tokens
    from zoo.text.text_inputs import classifier_head
    from zoo.text.text_inputs import text_inputs

    attention_units = attention_units or 2 * rnn_units
    inputs, token_ids, size = text_inputs(
        vocabulary, max_tokens, sequence_length, num_classes
    )
    x = embed_tokens(
        token_ids, size, embedding_dim, embedding_dropout, "embedding"
    )
    h = bigru_encoder(x, rnn_units, dropout, "bigru")  # [B, T, 2 * units]
    keys = keras.layers.Dense(attention_units, name="attention_keys")(h)
    # score_t = scale . tanh(query + key_t) with a zero query is Yang et
    # al.'s v . tanh(W h_t + b); the GRU's padding mask masks the keys.
    query = ops.zeros_like(keys[:, :1, :])
    pooled = keras.layers.AdditiveAttention(
        use_scale=True, name="word_attention"
    )([query, h, keys])
    pooled = keras.layers.Flatten(name="pooled")(pooled)
    outputs = classifier_head(pooled, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


# registry name -> (builder, task, the zoo model it mirrors)
MODELS = {
    "keras_cbam_resnet20": (
        keras_cbam_resnet20,
        "image_classification",
        "cbam_resnet20",
    ),
    "keras_bigru_attention": (
        keras_bigru_attention,
        "text_classification",
        "bigru_attention",
    ),
}


def register():
    """Registers the reference models in this process's zoo registry."""
    import zoo

    for name, (builder, task, mirrored) in MODELS.items():
        if name in zoo.list_models():
            continue
        zoo.register_model(
            name,
            task=task,
            inputs=zoo.get_model_info(mirrored).inputs,
            paper=f"{zoo.get_model_info(mirrored).paper} (stock Keras layers)",
        )(builder)
