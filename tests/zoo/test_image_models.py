"""Registry-driven tests of every image classification model in the zoo.

Each registered model is tested the moment it is registered: the full
battery (build, forward pass without NaN, one training step, `.keras`
round trip with equal outputs) runs on tiny 16x16 inputs for the models of
depth 20 and the ViT/MLP models; the deeper ResNets (32, 56, 110 layers),
which share the builder of their depth-20 siblings, are checked for
construction, parameter count and output shape only, to keep the default
test run fast.
"""

import os

import keras
import numpy as np
import pytest

import zoo
from tests.testing import run_layer_test
from zoo.resnet import ZeroPadShortcut

IMAGE_MODELS = zoo.list_models(task="image_classification")
DEEP = [
    n for n in IMAGE_MODELS if n.endswith(("resnet32", "resnet56", "resnet110"))
]
FULL = [n for n in IMAGE_MODELS if n not in DEEP]
SHAPE = (16, 16, 3)
CLASSES = 5


def _small(name):
    kwargs = {"input_shape": SHAPE, "num_classes": CLASSES}
    if not name.endswith("resnet20"):
        # Patch models: patch 4 on 16x16 gives a 4x4 grid of tokens; two
        # blocks exercise the same code as the full depth (built in
        # test_patch_models_build_at_full_size).
        kwargs.update(patch_size=4, depth=2)
    return kwargs


def _images(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), "uint8")


def test_registry_lists_the_image_models():
    for name in (
        "resnet20",
        "se_resnet20",
        "cbam_resnet20",
        "eca_resnet20",
        "nonlocal_resnet20",
        "resnet32",
        "cbam_resnet56",
        "vit_tiny",
        "mixer_tiny",
        "gmlp_tiny",
    ):
        assert name in IMAGE_MODELS
    assert set(zoo.list_models("*cbam*")) >= {"cbam_resnet20", "cbam_resnet56"}


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_metadata(name):
    info = zoo.get_model_info(name)
    assert info.task == "image_classification"
    assert "uint8" in info.inputs
    assert info.paper


@pytest.mark.parametrize("name", FULL)
def test_full_battery(name, tmp_path):
    model = zoo.build(name, **_small(name))
    assert model.input.dtype == "uint8"
    images = _images()
    probs = np.asarray(model(images))
    assert probs.shape == (2, CLASSES)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)

    # One training step: finite loss, weights move (eager: no tracing cost
    # for a single step; the compiled path is exercised by the runner tests).
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="categorical_crossentropy",
        run_eagerly=True,
    )
    targets = np.eye(CLASSES, dtype="float32")[[0, 1]]
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(images, targets)
    assert np.isfinite(loss)
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))

    # .keras round trip with equal outputs (inference mode).
    expected = np.asarray(model(images, training=False))
    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.asarray(reloaded(images, training=False)), expected, atol=1e-5
    )


@pytest.mark.parametrize("name", DEEP)
def test_deep_variants_build(name):
    depth = int(name.rsplit("resnet", 1)[1])
    model = zoo.build(name, input_shape=(8, 8, 1), num_classes=CLASSES)
    assert model.output_shape == (None, CLASSES)
    convs = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
        and "shortcut" not in layer.name
    ]
    # depth = convolutions + the classifier.
    assert len(convs) + 1 == depth


PATCH_MODELS = [n for n in FULL if not n.endswith("resnet20")]


@pytest.mark.parametrize("name", PATCH_MODELS)
def test_patch_models_build_at_full_size(name):
    model = zoo.build(name)  # 32x32x3, the registered depth and width
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    assert 1e6 < model.count_params() < 1e7


def test_patch_size_must_tile_the_image():
    with pytest.raises(ValueError, match="not divisible by `patch_size`"):
        zoo.build("mixer_tiny", input_shape=(10, 10, 1), patch_size=4)


def test_resnet_parameter_counts_match_the_paper():
    # He et al. 2016, table 6: 0.27M, 0.46M, 0.85M, 1.7M.
    counts = {
        depth: zoo.build(f"resnet{depth}").count_params()
        for depth in (20, 32, 56)
    }
    assert counts[20] / 1e6 == pytest.approx(0.27, abs=0.01)
    assert counts[32] / 1e6 == pytest.approx(0.46, abs=0.01)
    assert counts[56] / 1e6 == pytest.approx(0.85, abs=0.01)


def test_attention_blocks_are_in_every_residual_branch():
    from layers import CBAM
    from layers import NonLocalBlock
    from layers import SqueezeExcite

    def count(model, cls):
        return sum(isinstance(layer, cls) for layer in model.layers)

    small = {"input_shape": (8, 8, 1)}
    assert count(zoo.build("se_resnet20", **small), SqueezeExcite) == 9
    assert count(zoo.build("cbam_resnet20", **small), CBAM) == 9
    assert count(zoo.build("nonlocal_resnet20", **small), NonLocalBlock) == 1
    se = zoo.build("resnet20", attention="se", depth=8, **small)
    assert count(se, SqueezeExcite) == 3
    # A Layer class as `attention` names the model and blocks after it.
    own = zoo.build("resnet20", attention=SqueezeExcite, depth=8, **small)
    assert own.name == "SqueezeExcite_resnet8"
    assert count(own, SqueezeExcite) == 3
    assert own.get_layer("stage1_block1_SqueezeExcite")
    assert own(np.zeros((1, 8, 8, 1), "uint8")).shape == (1, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 21}, "6n \\+ 2"),
        ({"attention": "sse"}, "Received: attention=.sse."),
        ({"shortcut": "none"}, "`shortcut` must be one of"),
        ({"input_shape": (8, 8)}, "input_shape"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_resnet_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.build("resnet20", **kwargs)


def test_unknown_model_lists_close_matches():
    with pytest.raises(KeyError, match="cbam_resnet20"):
        zoo.build("cbam_resnet_20")


def test_projection_shortcut_variant():
    model = zoo.build("resnet20", input_shape=(8, 8, 1), shortcut="projection")
    assert any("shortcut_conv" in layer.name for layer in model.layers)
    assert np.all(np.isfinite(model(np.zeros((1, 8, 8, 1), "uint8"))))


def test_zero_pad_shortcut_layer():
    run_layer_test(
        ZeroPadShortcut,
        {"filters": 8, "strides": 2},
        np.random.default_rng(0).random((2, 6, 6, 4)).astype("float32"),
        expected_output_shape=(2, 3, 3, 8),
        expected_num_trainable_weights=0,
        run_training_step=False,
    )
    x = np.arange(2 * 4 * 4 * 2, dtype="float32").reshape(2, 4, 4, 2)
    y = np.asarray(ZeroPadShortcut(6, 2)(x))
    # Channels 2..3 carry the strided input, 0..1 and 4..5 are zeros.
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 4:].any()
    with pytest.raises(ValueError, match="filters"):
        ZeroPadShortcut(0)
    with pytest.raises(ValueError, match="cannot shrink"):
        ZeroPadShortcut(2)(x[..., :2].repeat(2, -1))


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("resnet20", {"depth": 8}, {"CAM"}),
        (
            "cbam_resnet20",
            {"depth": 8},  # one block per stage: its map is each stage's
            {"CAM"}
            | {f"CBAM spatial (stage{i}_block1_cbam)" for i in (1, 2, 3)},
        ),
        (
            "nonlocal_resnet20",
            {"depth": 8},
            {"CAM", "non-local (stage2_non_local)"},
        ),
        ("vit_tiny", {"depth": 2, "patch_size": 2}, {"attention rollout"}),
        ("mixer_tiny", {"depth": 1, "patch_size": 2}, {"CAM"}),
    ],
)
def test_attention_maps(name, kwargs, expected):
    model = zoo.build(name, input_shape=(8, 8, 1), **kwargs)
    maps = zoo.attention_maps(model, np.zeros((3, 8, 8, 1), "uint8") + 9)
    assert set(maps) == expected
    for value in maps.values():
        assert value.ndim == 3 and value.shape[0] == 3
        assert np.all(np.isfinite(value))
    if name == "cbam_resnet20":
        spatial = maps["CBAM spatial (stage1_block1_cbam)"]
        assert spatial.shape == (3, 8, 8)
        assert spatial.min() >= 0 and spatial.max() <= 1
    if name == "nonlocal_resnet20":
        received = maps["non-local (stage2_non_local)"]
        assert received.shape == (3, 4, 4)
        # Each query's weights sum to one, so the mean received sums to 1.
        np.testing.assert_allclose(received.sum((1, 2)), 1.0, rtol=1e-4)
    if name == "vit_tiny":
        rollout = maps["attention rollout"]
        assert rollout.shape == (3, 4, 4)  # the 4x4 grid of 2x2 patches
        # Rows of the rollout are distributions over all 1 + 16 tokens.
        assert np.all(rollout >= 0) and np.all(rollout.sum((1, 2)) < 1)


def test_attention_rollout_matches_a_hand_computation():
    from zoo.attention_maps import attention_rollout

    model = zoo.build(
        "vit_tiny",
        input_shape=(4, 4, 1),
        patch_size=2,
        depth=2,
        embed_dim=12,
        num_heads=3,
        mlp_dim=8,
    )
    images = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 1), "uint8")
    blocks = [layer for layer in model.layers if "attention" in layer.name]
    probe = keras.Model(model.inputs[0], [b.output[1] for b in blocks])
    scores = [np.asarray(s) for s in probe(images)]
    expected = np.eye(5)[None]
    for score in scores:
        a = score.mean(1) + np.eye(5)
        a = a / a.sum(-1, keepdims=True)
        expected = a @ expected
    np.testing.assert_allclose(
        attention_rollout(model, images),
        expected[:, 0, 1:].reshape(2, 2, 2),
        rtol=1e-5,
    )
