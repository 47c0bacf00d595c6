"""Vision Transformer (Dosovitskiy et al. 2021) sized for small images.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers for
Image Recognition at Scale": patches are embedded linearly, a learned class
token and position embeddings are added, `depth` pre-LayerNorm Transformer
encoder blocks (multi-head self-attention, then a GELU MLP) follow, and the
class token's final state is classified. `vit_tiny` has DeiT-Ti's width
(Touvron et al. 2021: 192 dimensions, 12 blocks, 3 heads) with 4x4 patches,
so a 32x32 image gives 64 patch tokens.

Every block keeps its attention weights in the graph, so
`zoo.attention_maps` computes the attention rollout (Abnar & Zuidema 2020).
"""

import keras

from layers import PositionEmbedding
from zoo.encoder_block import encoder_block
from zoo.image_inputs import patch_tokens
from zoo.image_inputs import token_classifier
from zoo.registry import register_model


def vision_transformer(
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    patch_size=4,
    embed_dim=192,
    depth=12,
    num_heads=3,
    mlp_dim=768,
    dropout=0.0,
    name="vit_tiny",
):
    """Builds a ViT classifier for uint8 images.

    Reference: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"
    (ICLR); sizes of DeiT-Ti (Touvron et al. 2021).

    Args:
        input_shape: `(H, W, C)`; `H` and `W` divisible by `patch_size`.
        num_classes: number of output classes.
        patch_size: side of the square patches.
        embed_dim: token width `D` (divisible by `num_heads`).
        depth: number of Transformer encoder blocks.
        num_heads: attention heads per block.
        mlp_dim: hidden width of the MLPs.
        dropout: dropout on attention weights and residual branches.
        name: model name.

    Returns:
        A functional `keras.Model`: uint8 images -> class probabilities.

    Example:
    >>> import numpy as np
    >>> model = vision_transformer(input_shape=(8, 8, 1), patch_size=2,
    ...                            depth=2)
    >>> tuple(model(np.zeros((2, 8, 8, 1), "uint8")).shape)
    (2, 10)
    """
    if embed_dim % num_heads:
        raise ValueError(
            "`embed_dim` must be divisible by `num_heads`. Received: "
            f"embed_dim={embed_dim}, num_heads={num_heads}"
        )
    # === Functional Model ===
    inputs, x = patch_tokens(input_shape, num_classes, patch_size, embed_dim)
    x = PositionEmbedding(use_class_token=True, name="position_embedding")(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(depth):
        x = encoder_block(
            x,
            num_heads=num_heads,
            ff_dim=mlp_dim,
            dropout=dropout,
            attention_dropout=dropout,
            name=f"block{i + 1}",
            ff_name="mlp",
        )
    return token_classifier(inputs, x, num_classes, name, pool="class_token")


register_model(
    "vit_tiny",
    task="image_classification",
    inputs="uint8 images [B, H, W, C] (default 32x32x3, patch 4)",
    paper="Dosovitskiy et al. 2021, An Image is Worth 16x16 Words (DeiT-Ti "
    "sizes, Touvron et al. 2021)",
)(vision_transformer)
