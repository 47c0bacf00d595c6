"""CIFAR-style ResNets (He et al. 2016) with pluggable attention blocks.

He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition"
(section 4.2): a 3x3 stem of 16 filters, three stages of `n` basic blocks
(16, 32, 64 filters; depth = 6n + 2), global average pooling, a softmax
classifier. `attention` inserts a channel/spatial attention block into every
residual branch before the addition, as SE-Net (Hu et al. 2018), CBAM (Woo
et al. 2018) and ECA-Net (Wang et al. 2020) do, or non-local blocks
(Wang et al. 2018) after whole stages.
"""

import keras

import layers
from layers.validation import check_choice
from layers.validation import check_positive_int
from zoo.image_inputs import class_probabilities
from zoo.image_inputs import image_inputs
from zoo.registry import register_model
from zoo.resnet.zero_pad_shortcut import ZeroPadShortcut

ATTENTIONS = (None, "se", "cbam", "eca", "non_local")
SHORTCUTS = ("zero_pad", "projection")


def _attention_block(attention, attention_kwargs, name):
    # Imported lazily: `layers` pulls in every attention layer.
    cls = layers.get_attention(attention)
    return cls(**(attention_kwargs or {}), name=name)


def _label(attention):
    # A Layer class given as `attention` names its blocks by its class name.
    return attention.__name__ if isinstance(attention, type) else attention


def _bn(name):
    # Momentum 0.9 (PyTorch's 0.1): moving statistics settle within a few
    # hundred steps, which matters on small datasets such as digits.
    return keras.layers.BatchNormalization(momentum=0.9, name=name)


def _conv(filters, strides, name):
    return keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _basic_block(
    x, filters, strides, attention, attention_kwargs, shortcut, name
):
    y = _conv(filters, strides, f"{name}_conv1")(x)
    y = _bn(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 1, f"{name}_conv2")(y)
    y = _bn(name=f"{name}_bn2")(y)
    if attention not in (None, "non_local"):
        # SE / CBAM / ECA recalibrate the residual branch before the sum.
        y = _attention_block(
            attention, attention_kwargs, f"{name}_{_label(attention)}"
        )(y)
    if strides != 1 or x.shape[-1] != filters:
        if shortcut == "zero_pad":
            x = ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
        else:
            x = keras.layers.Conv2D(
                filters,
                1,
                strides=strides,
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"{name}_shortcut_conv",
            )(x)
            x = _bn(name=f"{name}_shortcut_bn")(x)
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def cifar_resnet(
    depth=20,
    attention=None,
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    width=16,
    attention_kwargs=None,
    non_local_stages=(2,),
    shortcut="zero_pad",
    dropout=0.0,
    name=None,
):
    """Builds a CIFAR ResNet of `depth` = 6n + 2 layers, optionally attentive.

    Reference: He et al. 2016, "Deep Residual Learning for Image
    Recognition"; the attention blocks cite their own papers.

    Args:
        depth: number of weighted layers, `6n + 2` (20, 32, 56, 110, ...).
        attention: `None`, `"se"`, `"cbam"`, `"eca"` (one block in every
            residual branch, via `layers.get_attention`, which also takes
            `"channel"`, `"spatial"`, aliases or a Layer class) or
            `"non_local"` (one `NonLocalBlock` after each stage in
            `non_local_stages`).
        input_shape: `(H, W, C)` of the uint8 input images.
        num_classes: number of output classes.
        width: filters of the first stage (doubled at each later stage).
        attention_kwargs: keyword arguments for every attention block
            (e.g. `{"reduction": 8}`).
        non_local_stages: 1-based stages followed by a non-local block when
            `attention="non_local"`.
        shortcut: `"zero_pad"` (the paper's parameter-free option A) or
            `"projection"` (1x1 convolution, option B).
        dropout: dropout rate before the classifier.
        name: model name; defaults to e.g. `"cbam_resnet20"`.

    Returns:
        A functional `keras.Model` mapping uint8 images `[B, H, W, C]` to
        class probabilities `[B, num_classes]` (float32).

    Example:
    >>> import numpy as np
    >>> model = cifar_resnet(20, input_shape=(8, 8, 1), num_classes=10)
    >>> tuple(model(np.zeros((2, 8, 8, 1), "uint8")).shape)
    (2, 10)
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "`depth` must be 6n + 2 with n >= 1 (20, 32, 56, 110, ...). "
            f"Received: depth={depth!r}"
        )
    if attention not in ATTENTIONS:
        # Any block `layers.get_attention` knows ("channel", "spatial",
        # aliases) or a Layer class; unknown names raise its ValueError.
        layers.get_attention(attention, argument="attention")
    check_choice("shortcut", shortcut, SHORTCUTS)
    check_positive_int("width", width)
    blocks_per_stage = (depth - 2) // 6
    prefix = {None: "", "non_local": "nonlocal_"}.get(
        attention, f"{_label(attention)}_"
    )
    name = name or f"{prefix}resnet{depth}"

    # === Functional Model ===
    inputs, x = image_inputs(input_shape, num_classes)
    x = _conv(width, 1, "stem_conv")(x)
    x = _bn(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(
                x,
                filters,
                strides,
                attention,
                attention_kwargs,
                shortcut,
                name=f"stage{stage + 1}_block{block + 1}",
            )
        if attention == "non_local" and stage + 1 in tuple(non_local_stages):
            x = _attention_block(
                "non_local", attention_kwargs, f"stage{stage + 1}_non_local"
            )(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = class_probabilities(x, num_classes)
    return keras.Model(inputs, outputs, name=name)


_INPUTS = "uint8 images [B, H, W, C] (default 32x32x3)"
_HE = "He et al. 2016, Deep Residual Learning for Image Recognition"
_RESNET = dict(task="image_classification", inputs=_INPUTS, paper=_HE)
_SE = dict(_RESNET, paper=f"{_HE}; Hu et al. 2018, Squeeze-and-Excitation")
_CBAM = dict(_RESNET, paper=f"{_HE}; Woo et al. 2018, CBAM")
_ECA = dict(_RESNET, paper=f"{_HE}; Wang et al. 2020, ECA-Net")
_NL = dict(_RESNET, paper=f"{_HE}; Wang et al. 2018, Non-local Networks")

# === Registered variants (one line each over the shared builder) ===
register_model("resnet20", **_RESNET, depth=20)(cifar_resnet)
register_model("resnet32", **_RESNET, depth=32)(cifar_resnet)
register_model("resnet56", **_RESNET, depth=56)(cifar_resnet)
register_model("resnet110", **_RESNET, depth=110)(cifar_resnet)
register_model("se_resnet20", **_SE, depth=20, attention="se")(cifar_resnet)
register_model("se_resnet32", **_SE, depth=32, attention="se")(cifar_resnet)
register_model("se_resnet56", **_SE, depth=56, attention="se")(cifar_resnet)
register_model("se_resnet110", **_SE, depth=110, attention="se")(cifar_resnet)
register_model("cbam_resnet20", **_CBAM, depth=20, attention="cbam")(
    cifar_resnet
)
register_model("cbam_resnet32", **_CBAM, depth=32, attention="cbam")(
    cifar_resnet
)
register_model("cbam_resnet56", **_CBAM, depth=56, attention="cbam")(
    cifar_resnet
)
register_model("cbam_resnet110", **_CBAM, depth=110, attention="cbam")(
    cifar_resnet
)
register_model("eca_resnet20", **_ECA, depth=20, attention="eca")(cifar_resnet)
register_model("eca_resnet32", **_ECA, depth=32, attention="eca")(cifar_resnet)
register_model("eca_resnet56", **_ECA, depth=56, attention="eca")(cifar_resnet)
register_model("eca_resnet110", **_ECA, depth=110, attention="eca")(
    cifar_resnet
)
register_model("nonlocal_resnet20", **_NL, depth=20, attention="non_local")(
    cifar_resnet
)
register_model("nonlocal_resnet32", **_NL, depth=32, attention="non_local")(
    cifar_resnet
)
register_model("nonlocal_resnet56", **_NL, depth=56, attention="non_local")(
    cifar_resnet
)
register_model("nonlocal_resnet110", **_NL, depth=110, attention="non_local")(
    cifar_resnet
)
