"""Every weight of every layer starts from its own initializer draw.

A Keras 3 initializer made without a seed fixes its seed when constructed,
so one instance called twice with the same shape returns the same values.
These tests build every public layer of `layers` with settings that give it
same-shaped weights and check that no two of them start equal (query = key
kernels would make each token attend mostly to itself at initialisation).
"""

import inspect

import keras
import numpy as np
import pytest
from keras import ops

import layers

RNG = np.random.default_rng(0)
SEQ = RNG.normal(size=(2, 5, 8)).astype("float32")
SEQ6 = RNG.normal(size=(2, 5, 6)).astype("float32")
STEP = RNG.normal(size=(2, 8)).astype("float32")
IMAGES = RNG.normal(size=(2, 4, 4, 8)).astype("float32")
TOKENS = RNG.normal(size=(2, 8, 8)).astype("float32")


def _rnn_cell():
    return layers.AttentionRNNCell(
        keras.layers.GRUCell(8), layers.LuongAttention(score="general")
    )


# (name, factory, call) for every public layer: `call(layer)` builds it.
EXAMPLES = [
    (
        "Attention",
        lambda: layers.Attention("general"),
        lambda layer: layer(SEQ, SEQ),
    ),
    (
        "Attention-additive",
        lambda: layers.Attention("additive", score_kwargs={"units": 8}),
        lambda layer: layer(SEQ, SEQ),
    ),
    ("BahdanauAttention", lambda: layers.BahdanauAttention(8), None),
    ("LuongAttention", lambda: layers.LuongAttention("general"), None),
    (
        "LuongAttention-concat",
        lambda: layers.LuongAttention("concat", units=8),
        None,
    ),
    (
        "LuongAttention-location",
        lambda: layers.LuongAttention("location", max_length=8),
        None,
    ),
    ("MultiHeadAttention", lambda: layers.MultiHeadAttention(2, 4), None),
    (
        "MultiHeadAttention-unfused",
        lambda: layers.MultiHeadAttention(2, 4),
        lambda layer: layer(SEQ, SEQ6),
    ),
    (
        "HardAttention",
        lambda: layers.HardAttention(units=8, score="additive", seed=1),
        None,
    ),
    ("AttentionPooling1D", lambda: layers.AttentionPooling1D(8, 8), None),
    ("NonLocalBlock", lambda: layers.NonLocalBlock(reduction=1), None),
    (
        "NonLocalBlock-concat",
        lambda: layers.NonLocalBlock(mode="concat", zero_init=False),
        None,
    ),
    ("SelfAttention2D", lambda: layers.SelfAttention2D(num_heads=2), None),
    ("SqueezeExcite", lambda: layers.SqueezeExcite(reduction=1), None),
    ("ChannelAttention", lambda: layers.ChannelAttention(reduction=1), None),
    ("CBAM", lambda: layers.CBAM(reduction=1), None),
    ("EfficientChannelAttention", layers.EfficientChannelAttention, None),
    ("SpatialAttention", layers.SpatialAttention, None),
    ("MixerBlock", lambda: layers.MixerBlock(8, 8), None),
    ("GatedMLPBlock", lambda: layers.GatedMLPBlock(16), None),
    ("PatchEmbedding", lambda: layers.PatchEmbedding(8, patch_size=1), None),
    (
        "PositionEmbedding",
        lambda: layers.PositionEmbedding(use_class_token=True),
        None,
    ),
    ("AdditiveScore", lambda: layers.AdditiveScore(8), None),
    ("GeneralScore", layers.GeneralScore, None),
    ("LocationScore", lambda: layers.LocationScore(max_length=8), None),
    ("DotScore", layers.DotScore, None),
    ("ScaledDotScore", layers.ScaledDotScore, None),
    ("CosineScore", layers.CosineScore, None),
    ("AttentionRNNCell", _rnn_cell, None),
    ("AttentionRNN", lambda: layers.AttentionRNN(_rnn_cell()), None),
]

IMAGE_LAYERS = {
    "NonLocalBlock",
    "SelfAttention2D",
    "SqueezeExcite",
    "ChannelAttention",
    "CBAM",
    "EfficientChannelAttention",
    "SpatialAttention",
    "PatchEmbedding",
}
TOKEN_LAYERS = {"MixerBlock", "GatedMLPBlock", "PositionEmbedding"}
STEP_LAYERS = {"BahdanauAttention", "LuongAttention"}
SCORE_LAYERS = {
    "AdditiveScore",
    "GeneralScore",
    "LocationScore",
    "DotScore",
    "ScaledDotScore",
    "CosineScore",
}


def _build(name, layer, call):
    if call is not None:
        return call(layer)
    base = name.split("-")[0]
    if base in IMAGE_LAYERS:
        return layer(IMAGES)
    if base in TOKEN_LAYERS:
        return layer(TOKENS)
    if base in STEP_LAYERS:
        return layer(STEP, SEQ)
    if base in SCORE_LAYERS:
        return layer(SEQ, SEQ)
    if base == "AttentionRNNCell":
        return layer.build((2, 8), SEQ.shape)
    if base == "AttentionRNN":
        return layer(SEQ, SEQ)
    if base in ("AttentionPooling1D",):
        return layer(SEQ)
    return layer(SEQ, SEQ)


def test_every_public_layer_is_walked():
    public = {
        name
        for name, obj in vars(layers).items()
        if inspect.isclass(obj)
        and issubclass(obj, keras.layers.Layer)
        and name != "Score"  # abstract base of the score layers
    }
    walked = {name.split("-")[0] for name, _, _ in EXAMPLES}
    assert public <= walked, sorted(public - walked)


def _equal_pairs(layer):
    values = [
        (v.path, np.asarray(ops.convert_to_numpy(v))) for v in layer.weights
    ]
    pairs = []
    for i, (a_path, a) in enumerate(values):
        if a.size < 2 or np.all(a == a.flat[0]):
            continue  # constant initialisers (zeros, ones) are equal by design
        for b_path, b in values[i + 1 :]:
            if a.shape == b.shape and np.allclose(a, b):
                pairs.append((a_path, b_path))
    return pairs


def _blocks(layer):
    """The separately initialised blocks of fused projection kernels."""
    blocks = []
    for v in layer.weights:
        if v.path.endswith("qkv_kernel"):
            owner = layer if hasattr(layer, "_q_width") else None
            if owner is None:
                continue
            w = np.asarray(ops.convert_to_numpy(v))
            edges = np.cumsum([0, owner._q_width, owner._k_width])
            blocks += [
                (f"{v.path}[q]", w[:, edges[0] : edges[1]]),
                (f"{v.path}[k]", w[:, edges[1] : edges[2]]),
                (f"{v.path}[v]", w[:, edges[2] :]),
            ]
    return blocks


@pytest.mark.parametrize(
    "name, factory, call", EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_no_two_same_shaped_weights_start_equal(name, factory, call):
    layer = factory()
    _build(name, layer, call)
    assert layer.weights or name.split("-")[0] in SCORE_LAYERS
    assert _equal_pairs(layer) == []


def test_fused_qkv_blocks_and_output_kernel_start_different():
    """`MultiHeadAttention(2, 4)` on width 8: W_q, W_k, W_v, W_o all [8, 8]."""
    layer = layers.MultiHeadAttention(2, 4)
    layer(SEQ, SEQ)
    blocks = _blocks(layer) + [
        ("output_kernel", ops.convert_to_numpy(layer.output_kernel))
    ]
    for i, (a_name, a) in enumerate(blocks):
        for b_name, b in blocks[i + 1 :]:
            assert not np.allclose(a, b), (a_name, b_name)


def test_self_attention_is_not_biased_to_the_diagonal_at_initialisation():
    """With W_q = W_k a token puts ~0.5 of its weight on itself; with
    independent projections the weight is near uniform (1/T)."""
    x = np.random.default_rng(1).normal(size=(8, 16, 32)).astype("float32")
    layer = layers.MultiHeadAttention(4, 8)
    _, scores = layer(x, x, return_attention_scores=True)
    diagonal = np.diagonal(ops.convert_to_numpy(scores), axis1=-2, axis2=-1)
    assert diagonal.mean() < 2.5 / 16
