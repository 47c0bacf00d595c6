"""`get_attention`: vision attention blocks by name (as timm's create_attn).

Models take `attention="cbam"` and build `get_attention(attention)(channels)`.
"""

import keras

from layers.cbam import CBAM
from layers.channel_attention import ChannelAttention
from layers.efficient_channel_attention import EfficientChannelAttention
from layers.naming import UnknownNameError
from layers.naming import did_you_mean
from layers.non_local_block import NonLocalBlock
from layers.self_attention_2d import SelfAttention2D
from layers.spatial_attention import SpatialAttention
from layers.squeeze_excite import SqueezeExcite

# Canonical name -> class. Every class takes `channels` as its first
# argument (or infers it), so `cls(channels)` and `cls()` both work.
ATTENTION_LAYERS = {
    "se": SqueezeExcite,
    "cbam": CBAM,
    "eca": EfficientChannelAttention,
    "non_local": NonLocalBlock,
    "channel": ChannelAttention,
    "spatial": SpatialAttention,
    "self_attention_2d": SelfAttention2D,
}

# Other spellings users reach for -> canonical name.
ALIASES = {
    "squeeze_excite": "se",
    "squeeze_excitation": "se",
    "squeeze_and_excitation": "se",
    "squeezeexcite": "se",
    "senet": "se",
    "efficient_channel_attention": "eca",
    "efficientchannelattention": "eca",
    "eca_net": "eca",
    "nonlocal": "non_local",
    "non_local_block": "non_local",
    "nonlocalblock": "non_local",
    "nl": "non_local",
    "channel_attention": "channel",
    "channelattention": "channel",
    "cbam_channel": "channel",
    "spatial_attention": "spatial",
    "spatialattention": "spatial",
    "cbam_spatial": "spatial",
    "selfattention2d": "self_attention_2d",
    "self_attention2d": "self_attention_2d",
    "mhsa": "self_attention_2d",
    "mhsa_2d": "self_attention_2d",
    "botnet": "self_attention_2d",
    "bottleneck_attention": "self_attention_2d",
}

NONE_NAMES = ("none", "")


def _known_names():
    return sorted(set(ATTENTION_LAYERS) | set(ALIASES))


def get_attention(name, argument="name"):
    """Returns the vision attention layer class registered under `name`.

    Names are case-insensitive and `-` equals `_`. Canonical names:
    `"se"` (`SqueezeExcite`), `"cbam"` (`CBAM`), `"eca"`
    (`EfficientChannelAttention`), `"non_local"` (`NonLocalBlock`),
    `"channel"` (`ChannelAttention`), `"spatial"` (`SpatialAttention`),
    `"self_attention_2d"` (`SelfAttention2D`); aliases such as
    `"squeeze_excite"`, `"nonlocal"`, `"mhsa"`, `"botnet"` or the class
    names also work.

    `None`, `"none"` and `""` return `None`, so a model can take
    `attention=None` and skip the block (`if cls is not None: ...`).
    A `keras.layers.Layer` subclass is returned unchanged, so models also
    accept a custom block class.

    Args:
        name: a string, `None`, or a `keras.layers.Layer` subclass.
        argument: how error messages call `name` (a model passes its own
            argument's name, e.g. `"attention"`).

    Returns:
        The layer class, or `None`.

    Raises:
        ValueError: for an unknown name (the message lists close matches
            and the canonical names) or an argument of another type.

    Example:

    >>> cls = get_attention("cbam")
    >>> block = cls(64, reduction=8)
    >>> get_attention(None) is None
    True
    """
    if name is None:
        return None
    if isinstance(name, type) and issubclass(name, keras.layers.Layer):
        return name
    if not isinstance(name, str):
        raise ValueError(
            f"`{argument}` must be a string, None or a keras.layers.Layer "
            f"subclass. Received: {argument}={name!r}"
        )
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in NONE_NAMES:
        return None
    key = ALIASES.get(key, key)
    if key in ATTENTION_LAYERS:
        return ATTENTION_LAYERS[key]
    hint = did_you_mean(key, _known_names())
    raise UnknownNameError(
        f"Unknown attention block {name!r}.{hint} Choose one of: "
        f"{', '.join(sorted(ATTENTION_LAYERS))} (or an alias such as "
        f"'squeeze_excite'), or None / 'none'. Received: {argument}={name!r}"
    )
