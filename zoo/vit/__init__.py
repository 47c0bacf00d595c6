"""Vision Transformer image classifiers (Dosovitskiy et al. 2021)."""

from zoo.vit.vision_transformer import vision_transformer
