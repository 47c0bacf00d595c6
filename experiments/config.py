"""Typed experiment configs: dataclasses, named experiments, dotted overrides.

In the spirit of tf-models-official's `config_definitions.py`, without gin or
YAML: an experiment is an `ExperimentConfig` of small dataclasses returned by
a factory registered under a name; `--set train.learning_rate=0.1` style
overrides are checked against the dataclass fields and their types, and the
resolved config is written to the run folder as `config.json`.
"""

import ast
import copy
import dataclasses
import json
import types
import typing

from experiments.errors import UserError
from experiments.errors import unknown_name_error


@dataclasses.dataclass
class DataConfig:
    """Where the data comes from and how it is batched (every task).

    Attributes:
        name: an official TFDS name (`"cifar10"`, `"imdb_reviews"`), one of
            the project's builders (`"digits"`), or the path of a prepared
            TFDS dataset version directory (`builder_from_directory`).
        train_split: TFDS split trained on (slicing like `"train[:90%]"`
            allowed).
        validation_split: split evaluated after every epoch for the
            training curves (no early stopping or checkpoint selection
            reads it). `"auto"`: the dataset's validation split, or, when
            it has none, a seeded `validation_fraction` of the training
            split held out (training uses the rest); `""` for none. Never
            the test split.
        validation_fraction: share of the training split held out for
            validation when the dataset has no validation split.
        validation_seed: seed choosing the held-out examples (fixed, so
            every run seed validates on the same examples).
        test_split: split of the final evaluation.
        batch_size: global training batch size (split across replicas).
        eval_batch_size: batch size of evaluation and prediction.
        shuffle_buffer: `tf.data` shuffle buffer (examples).
        cache: cache the decoded examples in memory.
        download: allow downloading official datasets that are not prepared.
        max_train_examples: use only the first N training examples (0: all).
        max_eval_examples: use only the first N validation/test examples.
    """

    name: str = "digits"
    train_split: str = "train"
    validation_split: str = "auto"
    validation_fraction: float = 0.1
    validation_seed: int = 0
    test_split: str = "test"
    batch_size: int = 128
    eval_batch_size: int = 256
    shuffle_buffer: int = 10_000
    cache: bool = True
    download: bool = True
    max_train_examples: int = 0
    max_eval_examples: int = 0


@dataclasses.dataclass
class ModelConfig:
    """Which zoo model to build, and the builder's keyword overrides.

    Attributes:
        name: registry name (`python -m experiments list --models`).
        kwargs: keyword arguments of the zoo builder, e.g.
            `{"attention": "se", "depth": 32}`. On the command line
            `--set model.kwargs.attention=se` or the short form
            `--set model.attention=se`; the task fills `input_shape` and
            `num_classes` from the dataset unless given here.
    """

    name: str = ""
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainConfig:
    """Optimiser, schedule and loop settings (every task).

    Attributes:
        epochs: number of training epochs.
        optimizer: `"sgd"` (with momentum), `"adamw"` or `"adam"`.
        learning_rate: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: decoupled weight decay (Keras optimisers'
            `weight_decay`: `w -= learning_rate * weight_decay * w` every
            step), not applied to biases and normalisation parameters.
        schedule: `"cosine"` (to zero), `"step"` (/10 at 50% and 75% of
            training, He et al. 2016) or `"constant"`.
        warmup_epochs: linear warm-up epochs before the schedule.
        label_smoothing: label smoothing of the cross-entropy.
        clipnorm: gradient norm clipping (0: off).
        ema_momentum: momentum of an exponential moving average of the
            trainable weights (Polyak & Juditsky 1992; Keras optimisers'
            `use_ema`), updated every step; at the end of training the
            model takes the averaged weights, which are then evaluated,
            saved and exported. 0: off; 0.999 averages over roughly the
            last 1,000 steps. Per-epoch validation metrics are those of
            the raw weights.
        steps_per_execution: training steps per compiled call.
        jit_compile: XLA compilation; `None` lets Keras decide (off on CPU).
        run_eagerly: run the training step eagerly (debugging; skips
            `tf.function` tracing, so it also suits tiny smoke runs).
        deterministic: enable TensorFlow op determinism (slower; with the
            seed, two runs give identical metrics).
    """

    epochs: int = 10
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    clipnorm: float = 0.0
    ema_momentum: float = 0.0
    steps_per_execution: int = 1
    jit_compile: bool | None = None
    run_eagerly: bool = False
    deterministic: bool = False


@dataclasses.dataclass
class EvalConfig:
    """Evaluation outputs.

    Attributes:
        plots: write the PNG plots (curves, confusion matrix, attention).
        attention_maps: number of test examples whose attention is drawn.
    """

    plots: bool = True
    attention_maps: int = 6


@dataclasses.dataclass
class ExperimentConfig:
    """One experiment: task, data, model, training, evaluation, export.

    Attributes:
        task: task plugin name (`experiments.tasks.TASKS`).
        data: data settings (a task may use a subclass with more fields).
        model: zoo model name and builder overrides.
        train: optimiser and loop settings.
        eval: evaluation outputs.
        export: write the SavedModel into the run folder.
        serving_max_batch: the largest batch a request to the exported
            model may carry (larger ones are refused with "Bad request");
            0: 1,024 images or 4,096 strings.
        seed: global random seed (Python, NumPy, TensorFlow).
        description: one line shown by `python -m experiments list`.
    """

    task: str = "image_classification"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    export: bool = True
    serving_max_batch: int = 0
    seed: int = 0
    description: str = ""


# ----------------------------------------------------------------------------
# Named experiments.

_EXPERIMENTS = {}


def register_experiment(name):
    """Decorator registering a zero-argument factory of an `ExperimentConfig`.

    Registering a name twice raises `ValueError`.
    """

    def decorator(factory):
        if name in _EXPERIMENTS:
            raise ValueError(
                f"Experiment {name!r} is already registered. Received: "
                f"name={name!r}"
            )
        _EXPERIMENTS[name] = factory
        return factory

    return decorator


def register_experiments(table):
    """Registers every entry of a config module's `EXPERIMENTS` table.

    Args:
        table: `{name: factory}`, each factory a zero-argument callable
            returning an `ExperimentConfig` (usually
            `functools.partial(experiment_fn, model, ...)`), so that every
            experiment name is written out once, as a literal.
    """
    for name, factory in table.items():
        register_experiment(name)(factory)


def _load_named():
    # The named experiments live in `experiments.configs`; import them here
    # (explicitly listed there) so callers never depend on import order.
    import experiments.configs  # noqa: F401


def experiment_names():
    """Sorted names of all registered experiments."""
    _load_named()
    return sorted(_EXPERIMENTS)


def get_experiment(name):
    """A fresh `ExperimentConfig` of the named experiment.

    Raises:
        UserError: unknown name; the message lists close matches.
    """
    _load_named()
    if name not in _EXPERIMENTS:
        raise unknown_name_error(
            "experiment",
            name,
            _EXPERIMENTS,
            "`python -m experiments list` shows all experiments.",
        )
    config = _EXPERIMENTS[name]()
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"Experiment factory {name!r} must return a config")
    return config


# ----------------------------------------------------------------------------
# Dotted overrides.

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


_TYPE_NAMES = {
    bool: "a boolean (true/false)",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a JSON object",
}


def _type_name(tp):
    origin = typing.get_origin(tp) or tp
    return _TYPE_NAMES.get(origin, getattr(tp, "__name__", str(tp)))


def parse_literal(text):
    """Parses a free-form value (model kwargs): JSON/Python literal or str."""
    lowered = text.strip().lower()
    if lowered in _NONE:
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError):
            continue
        if isinstance(value, tuple):
            value = list(value)
        return value
    return text


def _convert(key, text, tp):
    """Converts the string `text` to the annotated type `tp` of `key`."""

    def bad(expected):
        return UserError(
            f"Invalid value for {key}: expected {expected}. Received: "
            f"{key}={text!r}"
        )

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.strip().lower() in _NONE and len(options) < len(
            typing.get_args(tp)
        ):
            return None
        if len(options) == 1:
            try:
                return _convert(key, text, options[0])
            except UserError:
                raise bad(f"{_type_name(options[0])} or none") from None
        return parse_literal(text)
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise bad("a boolean (true/false)")
    if tp is int:
        try:
            return int(text.strip().replace("_", ""))
        except ValueError:
            raise bad("an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise bad("a number") from None
    if tp is str:
        return text
    if tp in (list, tuple) or origin in (list, tuple):
        value = parse_literal(text)
        if isinstance(value, str):
            value = [parse_literal(v) for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            value = [value]
        item_types = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if item_types and item_types[0] in (int, float):
            try:
                value = [item_types[0](v) for v in value]
            except (TypeError, ValueError):
                raise bad(f"a list of {item_types[0].__name__}") from None
        return value
    if tp is dict or origin is dict:
        value = parse_literal(text)
        if not isinstance(value, dict):
            raise bad("a JSON object")
        return value
    return parse_literal(text)


def valid_keys(config, prefix=""):
    """All settable dotted keys of a config (dict fields end in `.*`)."""
    keys = []
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            keys.extend(valid_keys(value, key + "."))
        elif (
            hints[field.name] is dict
            or typing.get_origin(hints[field.name]) is dict
        ):
            keys.append(key + ".*")
        else:
            keys.append(key)
    return keys


def _initials(name):
    return "".join(word[:1] for word in name.split("_"))


def _similar_keys(key, keys):
    """Close keys: by full key, by last part, or by initials (lr)."""
    # On the error path only: `layers` imports Keras, which `list` and
    # `show` never load.
    from layers.naming import close_matches

    matches = close_matches(key, keys, n=3)
    head, _, last = key.rpartition(".")
    for candidate in keys:
        c_head, _, c_last = candidate.rpartition(".")
        if c_head != head or candidate in matches:
            continue
        if last == _initials(c_last) or (
            close_matches(last, [c_last]) and len(last) > 2
        ):
            matches.insert(0, candidate)
    return matches[:3]


def _unknown_key(key, config):
    keys = valid_keys(config)
    return unknown_name_error(
        "config key",
        key,
        keys,
        f"Valid keys: {', '.join(keys)}",
        matches=_similar_keys(key, keys),
    )


def set_value(config, key, text):
    """Sets the dotted `key` of `config` (in place) from the string `text`."""
    parts = key.split(".")
    if not all(parts):
        raise _unknown_key(key, config)
    node = config
    for depth, part in enumerate(parts):
        if not dataclasses.is_dataclass(node):
            raise _unknown_key(key, config)
        names = {f.name for f in dataclasses.fields(node)}
        hints = typing.get_type_hints(type(node))
        rest = parts[depth + 1 :]
        if part not in names:
            # Short form: model.<arg> is a builder keyword argument.
            if isinstance(node, ModelConfig) and not rest:
                node.kwargs[part] = parse_literal(text)
                return
            raise _unknown_key(key, config)
        value = getattr(node, part)
        tp = hints[part]
        if dataclasses.is_dataclass(value):
            if not rest:
                raise UserError(
                    f"{key!r} is a group of settings; set one of its keys: "
                    + ", ".join(valid_keys(value, key + "."))
                )
            node = value
            continue
        if tp is dict or typing.get_origin(tp) is dict:
            if not rest:
                setattr(node, part, _convert(key, text, dict))
                return
            # model.kwargs.attention=se, model.kwargs.a.b=1 (nested dicts)
            target = value
            for sub in rest[:-1]:
                target = target.setdefault(sub, {})
                if not isinstance(target, dict):
                    raise UserError(f"{key!r}: {sub!r} is not a dict")
            target[rest[-1]] = parse_literal(text)
            return
        if rest:
            raise _unknown_key(key, config)
        setattr(node, part, _convert(key, text, tp))
        return


def apply_overrides(config, overrides):
    """Returns a copy of `config` with `["key=value", ...]` applied in order.

    Raises:
        UserError: malformed override, unknown key (lists the valid keys) or
            a value of the wrong type (names the key and the value).
    """
    config = copy.deepcopy(config)
    for override in overrides or ():
        if "=" not in override:
            raise UserError(
                "Overrides are written key=value (e.g. "
                f"train.learning_rate=0.05). Received: {override!r}"
            )
        key, text = override.split("=", 1)
        set_value(config, key.strip(), text.strip())
    return config


def to_dict(config):
    """The config as plain JSON-ready data (what `config.json` holds)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _fill(config, data, prefix=""):
    """Sets the fields of the dataclass `config` from the dict `data`."""
    fields = {field.name for field in dataclasses.fields(config)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise UserError(
            f"Unknown config key(s) {', '.join(prefix + k for k in unknown)}."
            f" Valid keys: {', '.join(valid_keys(config, prefix))}"
        )
    for name, value in data.items():
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UserError(
                    f"Config key {prefix}{name} must hold an object. "
                    f"Received: {prefix}{name}={value!r}"
                )
            _fill(current, value, f"{prefix}{name}.")
        else:
            setattr(config, name, copy.deepcopy(value))


def from_dict(data):
    """An `ExperimentConfig` from `to_dict`'s output (a `config.json`).

    The config classes of its task (with the task's own data fields) come
    from a registered experiment of the same task; every key is checked.

    Raises:
        UserError: not a config, an unknown task or an unknown key.
    """
    if not isinstance(data, dict) or "task" not in data:
        raise UserError(
            "A config file holds one JSON object with a `task` key (the "
            "config.json of a run). Received: "
            f"{type(data).__name__} {str(data)[:60]!r}"
        )
    templates = [
        config
        for config in map(get_experiment, experiment_names())
        if config.task == data["task"]
    ]
    if not templates:
        tasks = sorted({get_experiment(n).task for n in experiment_names()})
        raise UserError(
            f"Unknown task {data['task']!r} in the config. Known tasks: "
            f"{', '.join(tasks)}."
        )
    config = templates[0]
    _fill(config, data)
    return config


def load_config_file(path):
    """The `ExperimentConfig` saved at `path` (a run's `config.json`)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise UserError(
            f"Cannot read the config file {path!r}: {err.strerror}."
        ) from None
    except ValueError as err:
        raise UserError(
            f"The config file {path!r} is not valid JSON: {err}."
        ) from None
    return from_dict(data)


def diff(a, b, prefix=""):
    """Dotted keys whose values differ between two config dicts."""
    keys = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys.extend(diff(va, vb, f"{prefix}{key}."))
        elif va != vb:
            keys.append(f"{prefix}{key}: {va!r} -> {vb!r}")
    return keys
