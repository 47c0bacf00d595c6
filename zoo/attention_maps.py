"""Where an image model looks: attention maps of zoo image classifiers.

`attention_maps(model, images)` returns `{name: [N, h, w] array}` for every
kind of map the model holds:

- CBAM spatial maps (Woo et al. 2018) of the last block of every stage;
- non-local blocks (Wang et al. 2018): the attention each position
  receives, averaged over all query positions;
- ViT attention rollout (Abnar & Zuidema 2020, "Quantifying Attention
  Flow in Transformers"): head-averaged attention plus identity,
  renormalised and multiplied through the layers, read from the class
  token to the patches;
- `"CAM"`: the class activation map (Zhou et al. 2016, "Learning Deep
  Features for Discriminative Localization") of the predicted class, for
  models ending in global average pooling (`"pool"`) and a dense
  `"logits"` layer — every ResNet, so attention variants can be compared
  with the plain network.
"""

import math

import keras
import numpy as np


def _to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _layer_inputs(model, layers, images):
    probe = keras.Model(model.inputs[0], [layer.input for layer in layers])
    values = probe(images, training=False)
    if not isinstance(values, (list, tuple)):
        values = [values]
    return values


def _last_per_stage(layers):
    """The last layer of every `stageK_...` group (by name)."""
    chosen = {}
    for layer in layers:
        chosen[layer.name.split("_")[0]] = layer
    return list(chosen.values())


def cbam_spatial_maps(model, images):
    """`{name: [N, H, W]}` spatial gates of CBAM blocks (last per stage)."""
    import layers as attention_layers

    blocks = [
        layer
        for layer in model.layers
        if isinstance(layer, attention_layers.CBAM)
    ]
    blocks = _last_per_stage(blocks)
    if not blocks:
        return {}
    maps = {}
    for block, x in zip(blocks, _layer_inputs(model, blocks, images)):
        _, (_, spatial) = block(x, return_attention_scores=True)
        maps[f"CBAM spatial ({block.name})"] = _to_numpy(spatial)[..., 0]
    return maps


def non_local_maps(model, images):
    """`{name: [N, h, w]}` attention received per position, non-local."""
    import layers as attention_layers

    blocks = [
        layer
        for layer in model.layers
        if isinstance(layer, attention_layers.NonLocalBlock)
    ]
    if not blocks:
        return {}
    maps = {}
    for block, x in zip(blocks, _layer_inputs(model, blocks, images)):
        _, affinity = block(x, return_attention_scores=True)
        affinity = _to_numpy(affinity)  # [N, HW, H'W']
        keys = affinity.shape[-1]
        height = x.shape[1]
        if block.sub_sample:
            height = math.ceil(height / block.pool_size)
        width = keys // height
        received = affinity.mean(axis=1).reshape(-1, height, width)
        maps[f"non-local ({block.name})"] = received
    return maps


def class_activation_maps(model, images):
    """CAM of the predicted class: `[N, h, w]`, or `None` if unsupported."""
    try:
        pool = model.get_layer("pool")
        logits = model.get_layer("logits")
    except ValueError:
        return None
    features = pool.input
    if len(features.shape) != 4:
        return None
    probe = keras.Model(model.inputs[0], [features, model.outputs[0]])
    feats, probs = (_to_numpy(t) for t in probe(images, training=False))
    kernel = _to_numpy(logits.kernel)  # [C, num_classes]
    weights = kernel[:, probs.argmax(-1)].T  # [N, C]
    cam = np.einsum("nhwc,nc->nhw", feats, weights)
    return np.maximum(cam, 0.0)


def attention_maps(model, images):
    """All attention maps of `model` for uint8 `images` `[N, H, W, C]`.

    Args:
        model: a zoo image classifier (functional `keras.Model`).
        images: uint8 array `[N, H, W, C]`.

    Returns:
        Dict `{name: float array [N, h, w]}`; empty when the model exposes
        no map. Maps may be coarser than the images.
    """
    images = np.asarray(images)
    maps = {}
    maps.update(cbam_spatial_maps(model, images))
    maps.update(non_local_maps(model, images))
    cam = class_activation_maps(model, images)
    if cam is not None:
        maps["CAM"] = cam
    return maps
