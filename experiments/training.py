"""Training pieces shared by every task: seeds, strategies, optimisers,
learning-rate schedules and the callbacks that write a run folder."""

import csv
import dataclasses
import json
import os
import shutil
import time

import h5py
import keras
import numpy as np
import tensorflow as tf

from experiments import atomic
from experiments.errors import NonFiniteLossError
from experiments.errors import UserError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("cosine", "step", "constant")


def set_seed(seed, deterministic=False):
    """Seeds Python, NumPy and TensorFlow; optionally op determinism."""

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_strategy(name):
    """A `tf.distribute.Strategy` for `--strategy NAME`.

    `default` is the no-op strategy (one device); `mirrored` replicates on
    all local GPUs (the CPU without GPUs); `multi_worker` is
    `MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG` (one
    process per host, each with all its GPUs); `tpu` connects to the TPU of
    this VM or pod (`TPUClusterResolver`). The batch size in the config is
    the global batch, split across all replicas.

    Create it before any other TensorFlow work of the process: the
    multi-worker strategy configures the process's collective ops.
    """

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
            # Patches Keras internals: imported only when a multi-worker
            # strategy needs it.
            from experiments import keras_compat

            keras_compat.install()
            return tf.distribute.MultiWorkerMirroredStrategy()
        # TPU_NAME: "local" on a Cloud TPU VM, the TPU's name or
        # grpc://address otherwise; unset: found from the GCE metadata.
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        hints = {
            "tpu": " Run on a Cloud TPU VM with TPU_NAME=local, or set "
            "TPU_NAME to the TPU's name or grpc:// address.",
            "multi_worker": " Check TF_CONFIG: every worker needs the same "
            "cluster and its own task index.",
        }
        raise UserError(
            f"Cannot start the {name!r} strategy: {err}.{hints.get(name, '')}"
        ) from None


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in a (possibly one-process) cluster.

    Attributes:
        task_type: `"chief"`, `"worker"` or `None` (no cluster).
        task_id: index within `task_type`.
        num_workers: training processes of the cluster (chief included).
        chief: whether this process writes the run folder.
    """

    task_type: str | None = None
    task_id: int = 0
    num_workers: int = 1
    chief: bool = True

    @property
    def name(self):
        return f"{self.task_type or 'worker'}:{self.task_id}"


def worker_role(strategy):
    """The `WorkerRole` of this process under `strategy`.

    The chief is the `chief` task of `TF_CONFIG`, or worker 0 when the
    cluster has no `chief` job (Keras' multi-worker convention). Only
    `MultiWorkerMirroredStrategy` runs one process per worker; under the
    other strategies this process is the only one.
    """

    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return WorkerRole()
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    jobs = {}
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        jobs = resolver.cluster_spec().as_dict()
    has_chief = bool(jobs.get("chief"))
    chief = task_type == "chief" or (
        task_type == "worker" and task_id == 0 and not has_chief
    )
    workers = len(jobs.get("chief", [])) + len(jobs.get("worker", []))
    return WorkerRole(task_type, task_id, max(1, workers), chief)


def check_same_epoch(strategy, epoch):
    """Raises UserError unless every worker resumes from `epoch`.

    A collective op over all workers (call it on every worker): workers
    that resumed from different checkpoints would train on different
    batches and deadlock or diverge.
    """

    def local():
        return tf.constant([epoch], tf.int64)

    epochs = strategy.gather(strategy.run(local), axis=0).numpy()
    highest, lowest = int(epochs.max()), int(epochs.min())
    if highest != lowest:
        raise UserError(
            f"The workers found checkpoints of different epochs ({lowest} "
            f"to {highest}; this one: {epoch}). Put --out on storage every "
            "worker reads (the chief's checkpoints are restored everywhere) "
            "or delete the run folder to restart."
        )


def shard_by_data(dataset):
    """`dataset` with `tf.data` DATA auto-sharding (None stays None).

    For datasets Keras distributes itself (validation data, and training
    data without a `TrainStream`): every worker reads the whole pipeline
    and keeps its share of each batch. That is exact for any number of
    TFDS files (FILE sharding, the AUTO default, needs at least one file
    per worker) provided every worker's pipeline yields the same batches,
    which the runner's per-run seeding gives.
    """
    if dataset is None:
        return None
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)


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
    if train.ema_momentum:
        common["use_ema"] = True
        common["ema_momentum"] = float(train.ema_momentum)
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
        with atomic.replacing(self.path) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)

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


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first step whose loss is NaN or infinite.

    Keras' `TerminateOnNaN` only sets `stop_training`, so the epoch's
    checkpoint and the export would still be written from broken weights.
    This raises `NonFiniteLossError` at once instead: the epoch never ends,
    its checkpoint is not written, the last good one stays the one a rerun
    resumes from, and nothing is evaluated or exported.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.last_finite = None  # (epoch, step, loss)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if not logs or "loss" not in logs:
            return
        loss = float(np.asarray(logs["loss"]))
        if np.isfinite(loss):
            self.last_finite = (self.epoch, batch + 1, loss)
            return
        if self.last_finite is None:
            last = "no finite loss was logged before"
        else:
            e, step, value = self.last_finite
            last = f"last finite loss {value:.4g} at epoch {e}, step {step}"
        kept = (
            f"the checkpoint of epoch {self.epoch - 1} is kept"
            if self.epoch > 1
            else "no checkpoint was written yet"
        )
        raise NonFiniteLossError(
            f"The training loss became {loss} at epoch {self.epoch}, step "
            f"{batch + 1} ({last}); training stopped, {kept}, nothing was "
            "exported. Try a lower train.learning_rate, "
            "train.clipnorm=1.0, or float32 if a mixed-precision policy "
            "is set."
        )


# ----------------------------------------------------------------------------
# Crash-safe checkpoints.


class CheckpointError(UserError):
    """A checkpoint that cannot be read (truncated or corrupted file)."""


class RunCheckpoint(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose checkpoints survive a kill at any instant
    and are verified against their SHA-256 before a run resumes.

    Keras' `BackupAndRestore` overwrites `latest.weights.h5` in place and
    writes the epoch into `training_metadata.json` afterwards, so a kill
    while saving leaves a truncated weights file or weights of epoch `k+1`
    labelled epoch `k`. Here each epoch's weights (model and optimizer
    state) are written atomically (`experiments.atomic`) to
    `epoch-<k>.weights.h5`, after checking that the disk can hold them;
    then `training_metadata.json`, the commit record naming the epoch, its
    file and the file's SHA-256, is replaced atomically. A kill before
    that rename leaves the previous commit intact. The weights of the last
    two commits are kept: when the latest file is missing or its bytes no
    longer match the recorded checksum (bit rot, a bad copy), the run
    resumes from the one before, with a warning.

    Checkpoints are saved at the end of every epoch only (`save_freq`
    "epoch"): resuming mid-epoch would also need the position in the input
    pipeline, which Keras does not restore. With `TrainStream` input a
    resumed run then trains exactly like the uninterrupted one.

    Args:
        backup_dir: folder of the checkpoints (created).
    """

    METADATA = "training_metadata.json"
    LEGACY_WEIGHTS = "latest.weights.h5"  # Keras BackupAndRestore's name
    COMMIT_KEYS = ("epoch", "weights", "sha256", "bytes")

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False)
        self.restore_epoch = None
        self._restore_path = None

    # --- Reading -------------------------------------------------------
    def read_record(self):
        """The commit record (`None` when no epoch was committed)."""
        path = os.path.join(self.backup_dir, self.METADATA)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                record = json.load(f)
            int(record["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"The checkpoint record {path} is unreadable ({err}). Delete "
                f"{self.backup_dir} to restart the run from scratch, or "
                "pass another --out."
            ) from None
        return record

    def commits(self, record):
        """The commits of a record, newest first: dicts with `epoch`,
        `path` and `sha256` (`None` in records of older versions)."""
        out = []
        for commit in [record, record.get("previous")]:
            if not commit:
                continue
            name = commit.get("weights", self.LEGACY_WEIGHTS)
            out.append(
                {
                    "epoch": int(commit["epoch"]),
                    "path": os.path.join(self.backup_dir, name),
                    "sha256": commit.get("sha256"),
                }
            )
        return out

    def resolve(self):
        """Picks the checkpoint to restore; returns its epoch (0: none).

        Raises:
            CheckpointError: a record exists but none of its weights files
                is intact (the message says how to recover).
        """
        record = self.read_record()
        self.restore_epoch, self._restore_path = 0, None
        if record is None:
            return 0
        problems = []
        for commit in self.commits(record):
            problem = _checkpoint_problem(commit["path"], commit["sha256"])
            if problem is None:
                if problems:
                    print(
                        "warning: " + "; ".join(problems) + ". Resuming "
                        f"from the previous checkpoint (epoch "
                        f"{commit['epoch']}).",
                        flush=True,
                    )
                self.restore_epoch = commit["epoch"]
                self._restore_path = commit["path"]
                return self.restore_epoch
            problems.append(f"checkpoint {commit['path']} is {problem}")
        raise CheckpointError(
            "Cannot resume: "
            + "; ".join(problems)
            + f". Delete {self.backup_dir} to restart the run from scratch, "
            "or pass another --out."
        )

    def copy_from(self, source_dir):
        """Copies the committed checkpoint of `source_dir` here (workers)."""
        source = RunCheckpoint(source_dir)
        record = source.read_record()
        if record is None:
            return
        for commit in source.commits(record):
            if os.path.exists(commit["path"]):
                target = os.path.join(
                    self.backup_dir, os.path.basename(commit["path"])
                )
                with atomic.replacing(target) as tmp:
                    shutil.copyfile(commit["path"], tmp)
        atomic.write_json(os.path.join(self.backup_dir, self.METADATA), record)

    def restore(self, model):
        """Loads the resolved checkpoint into `model` (without `fit`)."""
        self.set_model(model)
        self.on_train_begin()

    # --- Keras hooks ---------------------------------------------------
    def on_train_begin(self, logs=None):
        if self.restore_epoch is None:
            self.resolve()
        if not self._restore_path:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            # The file holds the optimizer state too.
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(self._restore_path)
        except Exception as err:  # noqa: BLE001  (h5py/Keras raise many)
            raise CheckpointError(
                f"Cannot restore the checkpoint {self._restore_path} "
                f"({first_line(err)}). "
                f"Delete {self.backup_dir} to restart the run from scratch, "
                "or pass another --out."
            ) from None
        self.model._initial_epoch = self.restore_epoch

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        epoch = self._current_epoch
        name = f"epoch-{epoch:04d}.weights.h5"
        final = os.path.join(self.backup_dir, name)
        previous = self.read_record()
        size = (previous or {}).get("bytes") or weights_file_size(self.model)
        with atomic.replacing(final, size=size) as tmp:
            self.model.save_weights(tmp, overwrite=True)
        record = {
            "epoch": epoch,
            "weights": name,
            "sha256": atomic.sha256(final),
            "bytes": os.path.getsize(final),
        }
        if previous is not None and int(previous["epoch"]) != epoch:
            record["previous"] = {
                k: previous[k] for k in self.COMMIT_KEYS if k in previous
            }
        # The commit: from here on a restart resumes after epoch `epoch`.
        atomic.write_json(os.path.join(self.backup_dir, self.METADATA), record)
        keep = {name, record.get("previous", {}).get("weights")}
        for old in os.listdir(self.backup_dir):
            if old.endswith(".weights.h5") and old not in keep:
                if not atomic.is_temporary(old) and not old.startswith("."):
                    os.remove(os.path.join(self.backup_dir, old))


def weights_file_size(model, optimizer=True):
    """Bytes of a `.weights.h5` file of `model` (and of its optimizer
    state): an upper estimate, the values plus HDF5's per-variable
    overhead."""
    variables = list(model.weights)
    if optimizer and getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    values = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables
    )
    return int(values * 1.02) + 1024 * len(variables) + (32 << 10)


def first_line(err):
    """`"TypeName: first line of the message"` of an exception."""
    text = str(err).strip()
    name = type(err).__name__
    return f"{name}: {text.splitlines()[0]}" if text else name


def _checkpoint_problem(path, sha256):
    """Why a checkpoint file cannot be trusted, or None.

    With a recorded SHA-256 the bytes are compared with it (rot in the
    middle of a weights array leaves a readable HDF5 file of wrong
    values); records of older versions have none, and the file is only
    opened.
    """
    if not os.path.exists(path):
        return "missing"
    if sha256:
        if atomic.sha256(path) != sha256:
            return "damaged (its SHA-256 differs from the recorded one)"
        return None
    try:
        with h5py.File(path, "r") as f:
            f.keys()
    except Exception as err:  # noqa: BLE001
        return f"unreadable ({first_line(err)})"
    return None
