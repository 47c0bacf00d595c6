"""gMLP (Liu et al. 2021): MLPs with spatial gating instead of attention.

Liu, Dai, So & Le 2021, "Pay Attention to MLPs": patches are embedded
linearly, then `depth` gMLP blocks (channel MLP whose hidden units are
gated by a linear projection across tokens, the Spatial Gating Unit);
LayerNorm, global average pooling and a linear classifier follow. The
defaults are the paper's gMLP-Ti (depth 30, width 128, d_ffn 768), with
patches of 4 pixels for 32x32 images.
"""

from layers import GatedMLPBlock
from zoo.image_inputs import patch_tokens
from zoo.image_inputs import token_classifier
from zoo.registry import register_model


def gmlp(
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    patch_size=4,
    embed_dim=128,
    depth=30,
    ffn_dim=768,
    dropout=0.0,
    name="gmlp_tiny",
):
    """Builds a gMLP classifier for uint8 images.

    Reference: Liu, Dai, So & Le 2021, "Pay Attention to MLPs" (NeurIPS).

    Args:
        input_shape: `(H, W, C)`; `H` and `W` divisible by `patch_size`.
        num_classes: number of output classes.
        patch_size: side of the square patches.
        embed_dim: width of each patch token.
        depth: number of gMLP blocks.
        ffn_dim: hidden width of each block before the gating split.
        dropout: dropout inside the blocks.
        name: model name.

    Returns:
        A functional `keras.Model`: uint8 images -> class probabilities.

    Example:
    >>> import numpy as np
    >>> model = gmlp(input_shape=(8, 8, 1), patch_size=2, depth=2)
    >>> tuple(model(np.zeros((2, 8, 8, 1), "uint8")).shape)
    (2, 10)
    """
    # === Functional Model ===
    inputs, x = patch_tokens(input_shape, num_classes, patch_size, embed_dim)
    for i in range(depth):
        x = GatedMLPBlock(
            ffn_dim=ffn_dim, dropout=dropout, name=f"gmlp_block{i + 1}"
        )(x)
    return token_classifier(inputs, x, num_classes, name)


register_model(
    "gmlp_tiny",
    task="image_classification",
    inputs="uint8 images [B, H, W, C] (default 32x32x3, patch 4)",
    paper="Liu et al. 2021, Pay Attention to MLPs (gMLP-Ti)",
)(gmlp)
