"""Training pieces shared by every task: seeds, strategies, optimisers,
learning-rate schedules and the callbacks that write a run folder."""

import csv
import os
import time

import keras
import numpy as np

from experiments.errors import UserError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("cosine", "step", "constant")


def set_seed(seed, deterministic=False):
    """Seeds Python, NumPy and TensorFlow; optionally op determinism."""
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_strategy(name):
    """A `tf.distribute.Strategy` for `--strategy NAME`.

    `default` is the no-op strategy (one device); `mirrored` replicates on
    all local GPUs; `multi_worker` reads the cluster from `TF_CONFIG`;
    `tpu` connects to the TPU of this VM/pod. The batch size in the config
    is the global batch, split across replicas.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise UserError(
            f"Unknown strategy {name!r}. Choose one of: {', '.join(STRATEGIES)}"
        )
    try:
        if name == "default":
            return tf.distribute.get_strategy()
        if name == "mirrored":
            return tf.distribute.MirroredStrategy()
        if name == "multi_worker":
            return tf.distribute.MultiWorkerMirroredStrategy()
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise UserError(f"Cannot start the {name!r} strategy: {err}") from None


def is_chief(strategy):
    """Whether this worker writes the run folder's shared outputs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def learning_rate(train, steps_per_epoch):
    """The learning rate or schedule of a `TrainConfig`."""
    if train.schedule not in SCHEDULES:
        raise UserError(
            f"Unknown train.schedule {train.schedule!r}. Choose one of: "
            f"{', '.join(SCHEDULES)}"
        )
    total = max(1, train.epochs * steps_per_epoch)
    warmup = min(total - 1, max(0, train.warmup_epochs * steps_per_epoch))
    peak = float(train.learning_rate)
    if train.schedule == "cosine":
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                0.0,
                decay_steps=total - warmup,
                warmup_target=peak,
                warmup_steps=warmup,
            )
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total)
    if train.schedule == "step":
        boundaries = [int(total * 0.5), int(total * 0.75)]
        values = [peak, peak * 0.1, peak * 0.01]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries, values
        )
        return LinearWarmup(schedule, peak, warmup) if warmup else schedule
    if warmup:
        return LinearWarmup(None, peak, warmup)
    return peak


@keras.saving.register_keras_serializable(package="attention_zoo")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup_steps`, then `schedule`."""

    def __init__(self, schedule, peak, warmup_steps):
        self.schedule = schedule
        self.peak = peak
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / float(self.warmup_steps)
        after = self.peak if self.schedule is None else self.schedule(step)
        return keras.ops.where(step < self.warmup_steps, warm, after)

    def get_config(self):
        return {
            "schedule": None
            if self.schedule is None
            else keras.saving.serialize_keras_object(self.schedule),
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
        }

    @classmethod
    def from_config(cls, config):
        schedule = config["schedule"]
        if schedule is not None:
            schedule = keras.saving.deserialize_keras_object(schedule)
        return cls(schedule, config["peak"], config["warmup_steps"])


def build_optimizer(train, steps_per_epoch):
    """The optimiser of a `TrainConfig` (create inside the strategy scope)."""
    if train.optimizer not in OPTIMIZERS:
        raise UserError(
            f"Unknown train.optimizer {train.optimizer!r}. Choose one of: "
            f"{', '.join(OPTIMIZERS)}"
        )
    lr = learning_rate(train, steps_per_epoch)
    common = {}
    if train.clipnorm:
        common["clipnorm"] = float(train.clipnorm)
    decay = float(train.weight_decay) or None
    if train.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            lr,
            momentum=float(train.momentum),
            nesterov=bool(train.nesterov),
            weight_decay=decay,
            **common,
        )
    elif train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            lr, weight_decay=decay or 0.0, **common
        )
    else:
        optimizer = keras.optimizers.Adam(lr, weight_decay=decay, **common)
    if decay:
        # Biases and normalisation scales/offsets are not decayed.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def current_learning_rate(optimizer):
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


class HistoryLogger(keras.callbacks.Callback):
    """Writes `history.csv`: one row per finished epoch, resume-safe.

    Rows carry a 1-based `epoch`, every logged metric, the learning rate
    and the epoch's wall time. When a run resumes at epoch `k`, rows of
    epochs `>= k` left by the interrupted process are dropped first, so the
    file never holds an epoch twice.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.initial_epoch = None
        self._start = None

    def _read(self):
        if not os.path.exists(self.path):
            return [], []
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)

    def _write(self, fields, rows):
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def on_epoch_begin(self, epoch, logs=None):
        if self.initial_epoch is None:
            self.initial_epoch = epoch
            fields, rows = self._read()
            kept = [r for r in rows if int(r["epoch"]) <= epoch]
            if len(kept) != len(rows):
                self._write(fields, kept)
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        row["learning_rate"] = current_learning_rate(self.model.optimizer)
        row["epoch_time_s"] = time.perf_counter() - self._start
        fields, rows = self._read()
        for key in row:
            if key not in fields:
                fields.append(key)
        self._write(fields, [*rows, row])


def read_history(path):
    """`history.csv` as a list of dicts of floats (empty if missing)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step of this process (milliseconds)."""

    def __init__(self):
        super().__init__()
        self.times_ms = []
        self._t = None

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times_ms.append((time.perf_counter() - self._t) * 1e3)

    def summary(self):
        # The first steps of a process include tracing: skip them.
        times = np.asarray(self.times_ms[5:] or self.times_ms)
        if not len(times):
            return {}
        return {
            "train_step_time_ms_median": float(np.median(times)),
            "train_steps_timed": len(times),
        }
