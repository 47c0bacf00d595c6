"""Where an image model looks: attention maps of zoo image classifiers.

`attention_maps(model, images)` returns `{name: [N, h, w] array}` for every
kind of map the model supports:

- `"CAM"`: class activation map (Zhou et al. 2016, "Learning Deep Features
  for Discriminative Localization") of the predicted class, for models
  ending in global average pooling (`"pool"`) and a dense `"logits"` layer
  — available for every ResNet, so attention variants can be compared
  with the plain network.
"""

import keras
import numpy as np


def _to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


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
    cam = class_activation_maps(model, images)
    if cam is not None:
        maps["CAM"] = cam
    return maps
