"""The task plugin interface shared by every vertical of the runner.

The runner (`experiments.runner.run`) owns everything common to all tasks:
the run folder, config.json, seeding, the distribution strategy, the
optimiser and schedule, `model.fit` with checkpoints/resume, TensorBoard,
history.csv, training curves, metrics.json and the atomic export. A task
supplies only what differs, by overriding these methods:

- `load_data(config, data_dir, strategy)` -> `TaskData` (tf.data pipelines
  and whatever the model/evaluation/export need to know about the data);
- `build_model(config, data)` -> `keras.Model` (usually `zoo.build`);
- `loss(config)`, `metrics(config, data)` for `model.compile`;
- `evaluate(model, data, config, run_dir)` -> dict of final metrics (and
  task-specific reports and plots written into `run_dir`);
- `export(model, data, config, path)` writes the SavedModel into `path`
  (the runner makes it atomic);
- optionally `fit_kwargs`, `callbacks`, `timing_batch`,
  `ablation_models` (the models `ablate` compares by default).
"""

import dataclasses
import inspect

import numpy as np
import tensorflow as tf

import zoo
from experiments.errors import UserError


@dataclasses.dataclass
class TaskData:
    """What `Task.load_data` returns.

    Attributes:
        train: batched training `tf.data.Dataset` of `(inputs, targets)`
            (with `train_stream`: its first epoch, for inspection).
        validation: batched dataset evaluated after each epoch, or `None`.
        test: batched dataset of the final evaluation (task-defined
            element structure).
        steps_per_epoch: training steps per epoch.
        info: task-specific facts (input shape, label names, vocabulary
            size, number of examples per split, ...); written to
            metrics.json.
        extras: task-private objects the other hooks need but that do not
            belong in metrics.json (e.g. a vocabulary, in-memory texts for
            a reference baseline).
        train_stream: optional `experiments.data.TrainStream`: training
            batches as a pure function of (seed, epoch). With it the runner
            shards every global batch exactly across `tf.distribute`
            replicas and workers, and a resumed run sees the batches of the
            uninterrupted run. Without it the runner trains on `train`
            (sharded by `tf.data` DATA auto-sharding, which needs the same
            seeded pipeline on every worker).
    """

    train: object
    validation: object
    test: object
    steps_per_epoch: int
    info: dict = dataclasses.field(default_factory=dict)
    extras: dict = dataclasses.field(default_factory=dict)
    train_stream: object = None

    @classmethod
    def from_stream(cls, stream, **kwargs):
        """A `TaskData` that trains on `stream`.

        `train` is the stream's first epoch (prefetched) and
        `steps_per_epoch` its steps; `kwargs` are the other attributes.

        Args:
            stream: an `experiments.data.TrainStream`.
        """
        return cls(
            train=stream.epoch(0).prefetch(tf.data.AUTOTUNE),
            train_stream=stream,
            steps_per_epoch=stream.steps_per_epoch,
            **kwargs,
        )


def check_split_size(count, split, role):
    """Raises `UserError` when the `role` ("training", "test") split is
    empty (`count` examples)."""
    if not count:
        raise UserError(f"The {role} split {split!r} is empty.")


class Task:
    """Base class of task plugins; see the module docstring."""

    name = ""
    # Key of the metric `ablate` compares (in the dict `evaluate` returns).
    primary_metric = "test_accuracy"
    # Further metrics `ablate` tabulates (mean ± std) beside it.
    secondary_metrics = ()
    # Columns of `python -m experiments compare`: (header, metrics.json
    # key, format spec).
    comparison_columns = (
        ("test accuracy", "test_accuracy", ".4f"),
        ("parameters", "num_parameters", ","),
        ("train time (s)", "train_time_s_all_epochs", ".0f"),
    )

    # --- Validation, before any data is read ---------------------------
    def validate(self, config):
        """Checks settings, names and keyword arguments cheaply (raises
        UserError): batch sizes, the task's `check_settings`, the model."""
        self.check_batch_sizes(config)
        self.check_settings(config)
        self.check_model(config)

    def check_batch_sizes(self, config):
        """Both batch sizes are positive."""
        cfg = config.data
        if cfg.batch_size <= 0 or cfg.eval_batch_size <= 0:
            raise UserError(
                "data.batch_size and data.eval_batch_size must be > 0. "
                f"Received: data.batch_size={cfg.batch_size}, "
                f"data.eval_batch_size={cfg.eval_batch_size}"
            )

    def check_settings(self, config):
        """The task's own setting checks (none by default)."""

    def check_model(self, config):
        """The model name exists for this task; kwargs match its builder."""

        names = zoo.list_models(task=self.name)
        try:
            info = zoo.get_model_info(config.model.name)
        except KeyError as err:
            raise UserError(
                str(err.args[0]) + f" Models for {self.name}: "
                f"{', '.join(names)}."
            ) from None
        if info.task != self.name:
            raise UserError(
                f"Model {config.model.name!r} is a {info.task} model, not "
                f"a {self.name} model. Models for {self.name}: "
                f"{', '.join(names)}."
            )
        params = inspect.signature(info.builder).parameters
        takes_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )
        accepted = [
            n
            for n, p in params.items()
            if p.kind
            in (
                inspect.Parameter.KEYWORD_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            )
        ]
        unknown = [k for k in config.model.kwargs if k not in accepted]
        if unknown and not takes_any:
            raise UserError(
                f"Model {config.model.name!r} has no argument(s) "
                f"{', '.join(unknown)}. Valid keys: "
                + ", ".join(f"model.kwargs.{a}" for a in accepted)
            )
        return info

    # --- Hooks ---------------------------------------------------------
    def load_data(self, config, data_dir, strategy):
        raise NotImplementedError

    def model_defaults(self, config, data):
        """Builder arguments the data decides (input shape, vocabulary
        size, ...); `model.kwargs` overrides them."""
        return {}

    def build_model(self, config, data):
        """`zoo.build(model.name)` with `model_defaults` and `model.kwargs`;
        a builder's `ValueError`/`TypeError` becomes a `UserError`."""

        kwargs = {**self.model_defaults(config, data), **config.model.kwargs}
        try:
            return zoo.build(config.model.name, **kwargs)
        except (ValueError, TypeError) as err:
            raise UserError(
                f"Cannot build model {config.model.name!r}: {err}"
            ) from None

    def loss(self, config):
        raise NotImplementedError

    def metrics(self, config, data):
        return []

    def callbacks(self, config, data, run_dir):
        """Extra task callbacks for `model.fit` (none by default)."""
        return []

    def fit_kwargs(self, config, data):
        """Extra keyword arguments for `model.fit` (none by default)."""
        return {}

    def ablation_models(self, config):
        """Model specs `ablate` compares when no `--models` are given."""
        return [config.model.name]

    def ablation_notes(self, results):
        """Lines printed under the ablation table (e.g. a reference
        baseline); `results` maps model spec -> per-seed metrics dicts."""
        return []

    def ablation_figures(self, config, run_dirs, out, data_dir):
        """Figures comparing the ablation's models, written under `out`;
        `run_dirs` maps model spec -> per-seed run folders. Returns the
        paths."""
        return []

    def timing_batch(self, data):
        """One `(inputs, targets)` batch for step-time measurements."""
        for batch in data.train.take(1):
            return batch
        raise UserError("The training split is empty.")

    def choose_on_validation(self, model, data, config):
        """Evaluation settings chosen on the validation split, after training.

        Returns `(config, record)`: the config the test split is evaluated
        and the model exported with, and what was chosen and why (merged
        into metrics.json). The default chooses nothing.
        """
        return config, {}

    def evaluate(self, model, data, config, run_dir):
        raise NotImplementedError

    def export(self, model, data, config, path):
        raise NotImplementedError

    def summary_line(self, metrics):
        """The line printed at the end of a run."""
        return f"{self.primary_metric}: {metrics.get(self.primary_metric)}"


def pick_examples(labels, predicted, count):
    """Indices of `count` test examples to draw: a mistake or two, then
    distinct classes, then the first ones (deterministic)."""

    chosen = []
    wrong = np.flatnonzero(labels != predicted)
    chosen.extend(wrong[: max(1, count // 3)].tolist())
    seen = {int(labels[i]) for i in chosen}
    for i in range(len(labels)):
        if len(chosen) >= count:
            break
        if int(labels[i]) not in seen and i not in chosen:
            chosen.append(i)
            seen.add(int(labels[i]))
    for i in range(len(labels)):
        if len(chosen) >= count:
            break
        if i not in chosen:
            chosen.append(i)
    return np.asarray(chosen[:count], dtype="int64")
