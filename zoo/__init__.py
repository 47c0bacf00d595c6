"""Attention Zoo models, registered by name.

`zoo.build("cbam_resnet20", num_classes=10)`, `zoo.list_models("*cbam*")`.
Model modules are imported explicitly below, so registration never depends
on what the caller happened to import.
"""

from zoo.attention_maps import attention_maps
from zoo.loading import load_model
from zoo.metrics import MaskedAccuracy
from zoo.metrics import MaskedSparseCrossentropy
from zoo.registry import TASKS
from zoo.registry import ModelInfo
from zoo.registry import build
from zoo.registry import get_model_info
from zoo.registry import list_models
from zoo.registry import register_model
from zoo.sequence_generator import SequenceGenerator

# Model families (importing a family registers its models).
from zoo import gmlp  # noqa: E402  isort: skip
from zoo import mixer  # noqa: E402  isort: skip
from zoo import resnet  # noqa: E402  isort: skip
from zoo import text  # noqa: E402  isort: skip
from zoo import vit  # noqa: E402  isort: skip
from zoo import translation  # noqa: E402  isort: skip
from zoo import captioning  # noqa: E402  isort: skip

__all__ = [
    "attention_maps",
    "TASKS",
    "ModelInfo",
    "build",
    "get_model_info",
    "list_models",
    "load_model",
    "MaskedAccuracy",
    "MaskedSparseCrossentropy",
    "register_model",
    "SequenceGenerator",
]
