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
  `"logits"` layer — every ResNet (and, on the patch grid, Mixer and gMLP),
  so attention variants can be compared with the plain networks.
"""

import math

import keras
import numpy as np

import layers as attention_layers
from layers import MultiHeadAttention


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


def _patch_grid(model):
    """`(rows, cols)` of the patch grid of a patch-based model, or `None`."""
    try:
        embedding = model.get_layer("patch_embedding")
    except ValueError:
        return None
    patch = embedding.patch_size
    ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
    height, width = model.inputs[0].shape[1:3]
    return height // ph, width // pw


def attention_rollout(model, images):
    """ViT attention rollout from the class token: `[N, rows, cols]`.

    Abnar & Zuidema 2020: per block, the head-averaged attention `A` plus
    the identity (the residual connection), rows renormalised; the product
    over blocks gives how much each input token flows into each output
    token. The class token's row over the patch tokens is the map.
    Returns `None` for models without attention layers or patch grid.
    """

    blocks = [
        layer for layer in model.layers if isinstance(layer, MultiHeadAttention)
    ]
    grid = _patch_grid(model)
    if not blocks or grid is None:
        return None
    probe = keras.Model(model.inputs[0], [b.output[1] for b in blocks])
    scores = probe(images, training=False)
    if not isinstance(scores, (list, tuple)):
        scores = [scores]
    rollout = None
    for score in scores:
        attention = _to_numpy(score).mean(axis=1)  # [N, T, T]
        attention = attention + np.eye(attention.shape[-1])
        attention /= attention.sum(axis=-1, keepdims=True)
        rollout = attention if rollout is None else attention @ rollout
    tokens = rollout.shape[-1]
    patches = grid[0] * grid[1]
    if tokens != patches + 1:
        return None
    return rollout[:, 0, 1:].reshape(-1, *grid)


def class_activation_maps(model, images):
    """CAM of the predicted class: `[N, h, w]`, or `None` if unsupported."""
    try:
        pool = model.get_layer("pool")
        logits = model.get_layer("logits")
    except ValueError:
        return None
    features = pool.input
    grid = _patch_grid(model)
    if len(features.shape) == 3 and grid is not None:
        pass  # tokens [N, rows * cols, C] of a patch model: reshaped below
    elif len(features.shape) != 4:
        return None
    probe = keras.Model(model.inputs[0], [features, model.outputs[0]])
    feats, probs = (_to_numpy(t) for t in probe(images, training=False))
    if feats.ndim == 3:
        feats = feats.reshape(feats.shape[0], *grid, feats.shape[-1])
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
    rollout = attention_rollout(model, images)
    if rollout is not None:
        maps["attention rollout"] = rollout
    cam = class_activation_maps(model, images)
    if cam is not None:
        maps["CAM"] = cam
    return maps
