"""MLP-Mixer (Tolstikhin et al. 2021): image classification without attention.

Tolstikhin et al. 2021, "MLP-Mixer: An all-MLP Architecture for Vision":
patches are embedded linearly, then `depth` Mixer blocks alternate a
token-mixing MLP (across patches, replacing self-attention) and a
channel-mixing MLP; a LayerNorm, global average pooling over the patches
and a linear classifier follow.
"""

from layers import MixerBlock
from zoo.image_inputs import patch_tokens
from zoo.image_inputs import token_classifier
from zoo.registry import register_model


def mlp_mixer(
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    patch_size=4,
    embed_dim=192,
    depth=12,
    tokens_mlp_dim=96,
    channels_mlp_dim=768,
    dropout=0.0,
    name="mixer_tiny",
):
    """Builds an MLP-Mixer classifier for uint8 images.

    Reference: Tolstikhin et al. 2021, "MLP-Mixer: An all-MLP Architecture
    for Vision" (NeurIPS).

    Args:
        input_shape: `(H, W, C)` of the images; `H` and `W` divisible by
            `patch_size`.
        num_classes: number of output classes.
        patch_size: side of the square patches.
        embed_dim: channels `C` of each patch token.
        depth: number of Mixer blocks.
        tokens_mlp_dim: hidden width of the token-mixing MLPs.
        channels_mlp_dim: hidden width of the channel-mixing MLPs.
        dropout: dropout inside the MLPs.
        name: model name.

    Returns:
        A functional `keras.Model`: uint8 images -> class probabilities.

    Example:
    >>> import numpy as np
    >>> model = mlp_mixer(input_shape=(8, 8, 1), patch_size=2, depth=2)
    >>> tuple(model(np.zeros((2, 8, 8, 1), "uint8")).shape)
    (2, 10)
    """
    # === Functional Model ===
    inputs, x = patch_tokens(input_shape, num_classes, patch_size, embed_dim)
    for i in range(depth):
        x = MixerBlock(
            tokens_mlp_dim=tokens_mlp_dim,
            channels_mlp_dim=channels_mlp_dim,
            dropout=dropout,
            name=f"mixer_block{i + 1}",
        )(x)
    return token_classifier(inputs, x, num_classes, name)


register_model(
    "mixer_tiny",
    task="image_classification",
    inputs="uint8 images [B, H, W, C] (default 32x32x3, patch 4)",
    paper="Tolstikhin et al. 2021, MLP-Mixer: An all-MLP Architecture",
)(mlp_mixer)
