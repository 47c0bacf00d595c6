"""The model registry: `@register_model` builders, `build`, `list_models`.

Modelled on timm's registry: each model is a small builder function
decorated with `@register_model(...)`, which records its metadata (task,
expected inputs, paper). `build(name, **overrides)` calls the builder;
unknown names raise `layers.naming.UnknownNameError` (a `KeyError`)
listing close matches.
"""

import dataclasses
import fnmatch

from layers.naming import UnknownNameError
from layers.naming import did_you_mean
from layers.validation import check_choice

TASKS = (
    "image_classification",
    "text_classification",
    "translation",
    "image_captioning",
)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model.

    Attributes:
        name: registry name, e.g. `"cbam_resnet20"`.
        task: one of `TASKS`.
        inputs: human-readable description of the expected inputs, e.g.
            `"uint8 images [B, H, W, C]"`.
        paper: the paper the architecture comes from.
        builder: the function that builds the `keras.Model`.
        defaults: keyword arguments the builder applies by default.
    """

    name: str
    task: str
    inputs: str
    paper: str
    builder: object
    defaults: dict = dataclasses.field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name=None, *, task, inputs, paper, **defaults):
    """Decorator registering a model builder under `name` (default: its name).

    Args:
        name: registry name; defaults to the function's `__name__`.
        task: one of `TASKS`.
        inputs: description of the expected inputs.
        paper: paper reference of the architecture.
        **defaults: default keyword arguments passed to the builder (so one
            private builder can serve several registered variants).

    Returns:
        The decorator; it returns the builder unchanged.

    Raises:
        ValueError: if the name is already registered or the task unknown.
    """
    check_choice("task", task, TASKS)

    def decorator(fn):
        model_name = name or fn.__name__
        if model_name in _REGISTRY:
            raise ValueError(
                f"Model {model_name!r} is already registered (by "
                f"{_REGISTRY[model_name].builder.__module__}). Received: "
                f"name={model_name!r}"
            )
        _REGISTRY[model_name] = ModelInfo(
            name=model_name,
            task=task,
            inputs=inputs,
            paper=paper,
            builder=fn,
            defaults=dict(defaults),
        )
        return fn

    return decorator


def _unknown(name):
    return UnknownNameError(
        f"Unknown model {name!r}.{did_you_mean(name, _REGISTRY)} "
        "`zoo.list_models()` lists all "
        f"{len(_REGISTRY)} models."
    )


def get_model_info(name):
    """Returns the `ModelInfo` of a registered model (KeyError if unknown)."""
    if name not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[name]


def build(name, **overrides):
    """Builds the registered model `name` with builder keyword `overrides`.

    Args:
        name: registry name (see `list_models()`).
        **overrides: keyword arguments for the builder (e.g. `num_classes=10`).

    Returns:
        A `keras.Model`, ready to compile.

    Raises:
        KeyError: unknown name; the message lists close matches.
    """
    info = get_model_info(name)
    return info.builder(**{**info.defaults, **overrides})


def list_models(pattern="*", task=None):
    """Sorted registered model names matching a shell-style `pattern`.

    Args:
        pattern: wildcard pattern, e.g. `"*cbam*"`; a list matches any.
        task: optional task filter (one of `TASKS`).
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    names = [
        n
        for n, info in _REGISTRY.items()
        if any(fnmatch.fnmatch(n, p) for p in patterns)
        and (task is None or info.task == task)
    ]
    return sorted(names)
