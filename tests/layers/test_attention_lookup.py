"""Tests of get_attention and properties shared by every gating block."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import layers
from layers import CBAM
from layers import ChannelAttention
from layers import EfficientChannelAttention
from layers import NonLocalBlock
from layers import SelfAttention2D
from layers import SpatialAttention
from layers import SqueezeExcite
from layers import get_attention
from layers.naming import UnknownNameError
from tests.layers import vision_reference as ref
from tests.testing import property_settings

CANONICAL = {
    "se": SqueezeExcite,
    "cbam": CBAM,
    "eca": EfficientChannelAttention,
    "non_local": NonLocalBlock,
    "channel": ChannelAttention,
    "spatial": SpatialAttention,
    "self_attention_2d": SelfAttention2D,
}


@pytest.mark.parametrize("name,cls", sorted(CANONICAL.items()))
def test_canonical_names(name, cls):
    assert get_attention(name) is cls
    assert get_attention(name.upper()) is cls


@pytest.mark.parametrize(
    "name,cls",
    [
        ("squeeze_excite", SqueezeExcite),
        ("Squeeze-Excitation", SqueezeExcite),
        ("SqueezeExcite", SqueezeExcite),
        ("efficient_channel_attention", EfficientChannelAttention),
        ("nonlocal", NonLocalBlock),
        ("non-local", NonLocalBlock),
        ("NonLocalBlock", NonLocalBlock),
        ("channel_attention", ChannelAttention),
        ("spatial_attention", SpatialAttention),
        ("SelfAttention2D", SelfAttention2D),
        ("mhsa", SelfAttention2D),
        ("botnet", SelfAttention2D),
    ],
)
def test_aliases(name, cls):
    assert get_attention(name) is cls


@pytest.mark.parametrize("name", [None, "none", "None", ""])
def test_none_means_no_attention(name):
    assert get_attention(name) is None


def test_layer_class_passes_through():
    assert get_attention(SqueezeExcite) is SqueezeExcite


@pytest.mark.parametrize(
    "name,hint",
    [("cbma", "cbam"), ("squeeze_excit", "squeeze_excite"), ("ec", "eca")],
)
def test_unknown_names_suggest_close_matches(name, hint):
    with pytest.raises(
        UnknownNameError, match=f"Did you mean: .*{hint}"
    ) as err:
        get_attention(name)
    assert f"Received: name='{name}'" in str(err.value)


def test_unknown_name_without_close_match_lists_known_names():
    with pytest.raises(
        ValueError, match=r"Choose one of:.*cbam.*name='xyzzy'"
    ) as err:
        get_attention("xyzzy")
    # One short message: the canonical names, not every alias.
    assert "squeeze_and_excitation" not in str(err.value)
    assert str(err.value).count("Received:") == 1


def test_a_model_names_its_own_argument():
    with pytest.raises(ValueError, match="Received: attention='cbamm'"):
        get_attention("cbamm", argument="attention")


@pytest.mark.parametrize("bad", [3, SqueezeExcite(), ["se"], int])
def test_other_types_are_rejected(bad):
    with pytest.raises(ValueError, match="Received: name="):
        get_attention(bad)


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_every_block_takes_channels_first_argument(name):
    # Models build blocks as get_attention(name)(channels).
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 16)).astype("float32")
    block = get_attention(name)(16)
    assert tuple(block(x).shape) == x.shape
    assert get_attention(name)()(x).shape == x.shape


def test_exported_from_package():
    assert layers.get_attention is get_attention


def _gates(name, out):
    """The [0, 1] gates among a block's returned attention maps."""
    if name in ("non_local", "self_attention_2d"):
        return []
    if name == "cbam":
        return list(out[1])
    return [out[1]]


@pytest.mark.filterwarnings("ignore:You are using a softmax")
@property_settings(15)
@given(
    name=st.sampled_from(sorted(CANONICAL)),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    c=st.integers(1, 8),
    gate=st.sampled_from(["sigmoid", "hard_sigmoid"]),
    channels_first=st.booleans(),
    scale=st.sampled_from([0.1, 1.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_blocks_keep_shape_and_gates_lie_in_unit_interval(
    name, h, w, c, gate, channels_first, scale, seed
):
    data_format = "channels_first" if channels_first else "channels_last"
    shape = (2, c, h, w) if channels_first else (2, h, w, c)
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    x *= scale
    kwargs = {"data_format": data_format}
    if name in ("se", "channel", "cbam", "non_local"):
        kwargs["reduction"] = 1
    if name in ("spatial", "cbam"):
        kwargs["kernel_size"] = 3
    if name not in ("non_local", "self_attention_2d"):
        kwargs["gate"] = gate
    block = get_attention(name)(**kwargs)
    out = block(x, return_attention_scores=True)
    assert tuple(out[0].shape) == shape
    assert np.all(np.isfinite(ref.to_numpy(out[0])))
    for g in _gates(name, out):
        g = ref.to_numpy(g)
        assert g.ndim == 4 and np.all((g >= 0.0) & (g <= 1.0))
    if name == "non_local":
        assert tuple(out[1].shape) == (2, h * w, h * w)
    if name == "self_attention_2d":
        scores = ref.to_numpy(out[1])
        assert scores.shape == (2, 4, h * w, h * w)
        assert np.all((scores >= 0.0) & (scores <= 1.0))
