"""Shared TFDS access: official names, the project's builders, or a path.

Every task loads its data through `load_builder`, which returns a prepared
`tfds.core.DatasetBuilder` or raises one `UserError` saying how to obtain
the data — never a traceback from deep inside TFDS, and never minutes of
download retries on a machine without network.
"""

import dataclasses
import glob
import os
import socket
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import experiments.datasets
from experiments.errors import DamagedDataError
from experiments.errors import UserError
from experiments.errors import unknown_name_error
from layers.naming import close_matches

# Hosts TFDS downloads official datasets from (most are mirrored on GCS).
_PROBE_HOSTS = (("storage.googleapis.com", 443),)


def network_available(timeout=3.0):
    """Whether a TFDS download host answers within `timeout` seconds."""
    if os.environ.get("ATTENTION_ZOO_OFFLINE"):
        return False
    for host, port in _PROBE_HOSTS:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def is_path(name):
    """Whether a dataset name is a filesystem path (not a TFDS name)."""
    return name.startswith(("/", "./", "../", "~")) or os.path.isdir(name)


def own_builder_names():
    """Names of the project's TFDS builders (experiments/datasets)."""

    names = set()
    for module in vars(experiments.datasets).values():
        for obj in vars(module).values() if hasattr(module, "__dict__") else ():
            if (
                isinstance(obj, type)
                and issubclass(obj, tfds.core.DatasetBuilder)
                and obj.__module__ == getattr(module, "__name__", None)
            ):
                names.add(obj.name)
    return sorted(names)


def _obtain_hint(name, data_dir):
    target = data_dir or "~/tensorflow_datasets"
    return (
        f"To obtain it, on a machine with internet access run\n"
        f"    pip install tensorflow-datasets && tfds build {name} "
        f"--data_dir {target}\n"
        f"then copy that folder here and pass --data-dir {target} (or give "
        f"the prepared version directory: --set data.name=/path/to/"
        f"{name.split('/')[0]}/<version>)."
    )


def _from_directory(path):
    path = os.path.expanduser(path)
    if not os.path.isdir(path):
        raise UserError(
            f"Dataset directory {path!r} does not exist. Pass a prepared "
            "TFDS dataset version directory (the folder holding "
            "dataset_info.json, e.g. ~/tensorflow_datasets/mnist/3.0.1)."
        )
    if not os.path.exists(os.path.join(path, "dataset_info.json")):
        versions = sorted(
            d
            for d in os.listdir(path)
            if os.path.exists(os.path.join(path, d, "dataset_info.json"))
        )
        hint = (
            f" It contains prepared version(s) {', '.join(versions)}: pass "
            f"{os.path.join(path, versions[-1])}."
            if versions
            else ""
        )
        raise UserError(
            f"{path!r} is not a prepared TFDS dataset directory (no "
            f"dataset_info.json).{hint}"
        )
    try:
        return tfds.builder_from_directory(path)
    except Exception as err:  # noqa: BLE001
        raise UserError(
            f"Could not read the TFDS dataset in {path!r}: {err}"
        ) from None


def load_builder(name, data_dir=None, download=True, builder_kwargs=None):
    """A prepared TFDS builder for `name` (TFDS name or dataset directory).

    Args:
        name: official TFDS name (with optional `/config`), a builder in
            `experiments/datasets`, or a prepared dataset version directory.
        data_dir: TFDS data directory (default: TFDS's own default).
        download: whether official datasets may be downloaded.
        builder_kwargs: extra keyword arguments of the builder's
            constructor (e.g. `archive_path` of `movie_sentences`).

    Returns:
        A prepared `tfds.core.DatasetBuilder`.

    Raises:
        UserError: unknown name (close matches listed), or data missing and
            not obtainable here (the message says how to obtain it).
    """
    if not name:
        raise UserError("No dataset given: set data.name.")
    if is_path(name):
        return _from_directory(name)
    if data_dir:
        data_dir = os.path.expanduser(data_dir)
    try:
        builder = tfds.builder(
            name, data_dir=data_dir, **(builder_kwargs or {})
        )
    except tfds.core.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        raise unknown_name_error(
            "dataset",
            name,
            known,
            "Use an official TFDS name "
            "(https://www.tensorflow.org/datasets/catalog), one of the "
            f"project's datasets ({', '.join(own_builder_names())}), or the "
            "path of a prepared TFDS dataset directory.",
            matches=close_matches(name.split("/")[0], known),
        ) from None
    except Exception as err:  # noqa: BLE001  (bad config names, versions)
        raise UserError(f"Cannot open dataset {name!r}: {err}") from None
    if builder.is_prepared():
        return builder

    where = builder.data_dir
    if type(builder).__module__.startswith("experiments.datasets"):
        # The project's builders prepare from local files, no network.
        try:
            builder.download_and_prepare()
        except Exception as err:  # noqa: BLE001
            raise UserError(
                f"Could not prepare dataset {name!r} in {where}: {err}"
            ) from None
        return builder

    if not download:
        raise UserError(
            f"Dataset {name!r} is not prepared in {where} and downloads "
            f"are off (data.download=false).\n{_obtain_hint(name, data_dir)}"
        )
    if not network_available():
        raise UserError(
            f"Dataset {name!r} is not prepared in {where} and cannot be "
            "downloaded (no network).\n" + _obtain_hint(name, data_dir)
        )
    try:
        builder.download_and_prepare()
    except Exception as err:  # noqa: BLE001
        raise UserError(
            f"Downloading dataset {name!r} failed: {err}\n"
            + _obtain_hint(name, data_dir)
        ) from None
    return builder


def _split_names(builder):
    try:
        return ", ".join(sorted(builder.info.splits))
    except Exception:  # noqa: BLE001
        return "?"


# ----------------------------------------------------------------------------
# Splits: validation never comes from the test split.

# Split names that official and user datasets give their validation data.
VALIDATION_SPLIT_NAMES = ("validation", "val", "dev")


class HeldOutSplit(str):
    """A seeded part of a split: the examples held out for validation, or
    the rest (for training).

    A `str` (its readable description), so it travels wherever a TFDS split
    name does (messages, cache keys); `open_split` selects its examples.
    Which examples are held out depends only on the split's size, the
    fraction and the seed, never on the run's seed, so every run of an
    ablation validates on the same examples.
    """

    def __new__(cls, split, fraction, seed, held_out):
        if held_out:
            text = f"held-out {fraction:.0%} of {split} (seed {seed})"
        else:
            text = f"{split} minus its held-out {fraction:.0%} (seed {seed})"
        value = super().__new__(cls, text)
        value.split = split
        value.fraction = fraction
        value.seed = seed
        value.held_out = held_out
        return value

    def mask(self, num_examples):
        """Boolean `[num_examples]`: which examples are held out."""
        count = round(self.fraction * num_examples)
        if num_examples > 1:
            count = min(max(count, 1), num_examples - 1)
        order = np.random.default_rng(self.seed).permutation(num_examples)
        mask = np.zeros(num_examples, bool)
        mask[order[:count]] = True
        return mask


def _base_splits(split):
    """`{"train", "restval"}` of `"train[:90%]+restval"`."""
    return {part.split("[")[0].strip() for part in split.split("+")}


def resolve_splits(builder, cfg):
    """`cfg` with its training and validation splits made concrete.

    `data.validation_split="auto"` takes the dataset's own validation split
    (named as in `VALIDATION_SPLIT_NAMES`) when it has one; otherwise a
    seeded `data.validation_fraction` of the training split is held out
    (seed `data.validation_seed`) and training uses the rest. A validation
    split drawn from the test split is refused, so test metrics stay
    those of data no choice was made on.

    Args:
        builder: the prepared TFDS builder.
        cfg: the experiment's `DataConfig`.

    Returns:
        A copy of `cfg` whose `train_split` / `validation_split` are TFDS
        split names or `HeldOutSplit`s.

    Raises:
        UserError: the validation split overlaps the test split, or the
            fraction is not in (0, 1).
    """
    validation = cfg.validation_split
    if validation == "auto":
        own = [n for n in VALIDATION_SPLIT_NAMES if n in builder.info.splits]
        if own:
            return dataclasses.replace(cfg, validation_split=own[0])
        fraction = cfg.validation_fraction
        if not 0 < fraction < 1:
            raise UserError(
                "data.validation_fraction must be between 0 and 1 (the "
                "share of the training split held out for validation). "
                f"Received: data.validation_fraction={fraction!r}"
            )
        seed = cfg.validation_seed
        return dataclasses.replace(
            cfg,
            train_split=HeldOutSplit(cfg.train_split, fraction, seed, False),
            validation_split=HeldOutSplit(
                cfg.train_split, fraction, seed, True
            ),
        )
    if validation and _base_splits(validation) & _base_splits(cfg.test_split):
        raise UserError(
            f"data.validation_split={validation!r} uses the test split "
            f"(data.test_split={cfg.test_split!r}): choices made on it "
            "would leak into the test metrics. Use data.validation_split="
            "auto (the dataset's validation split, or a seeded slice of the "
            "training split), another split, or '' for none."
        )
    return cfg


def split_names(cfg):
    """The splits a resolved `cfg` reads, for `metrics.json`."""
    return {
        "train_split": str(cfg.train_split),
        "validation_split": str(cfg.validation_split),
        "test_split": str(cfg.test_split),
    }


def open_split(builder, split, max_examples=0, **as_dataset_kwargs):
    """`(dataset, num_examples)` of a (possibly sliced) split.

    Args:
        builder: a prepared TFDS builder.
        split: split name, slicing allowed (`"train[:90%]"`), or a
            `HeldOutSplit` of one.
        max_examples: keep only the first N examples (0: all).
        **as_dataset_kwargs: passed to `builder.as_dataset`.

    Raises:
        UserError: unknown split (the message lists the dataset's splits).
    """
    if isinstance(split, HeldOutSplit):
        return _open_held_out(builder, split, max_examples, as_dataset_kwargs)
    try:
        ds = builder.as_dataset(
            split=split, shuffle_files=False, **as_dataset_kwargs
        )
    except Exception as err:  # noqa: BLE001  (TFDS raises several types)
        raise UserError(
            f"Dataset {builder.info.full_name!r} has no split {split!r} "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
            f". Its splits: {_split_names(builder)}."
        ) from None
    if max_examples:
        ds = ds.take(max_examples)
    count = int(ds.cardinality())
    if count < 0:  # unknown cardinality: fall back on the metadata
        try:
            count = int(builder.info.splits[split].num_examples)
        except Exception:  # noqa: BLE001
            count = int(ds.reduce(0, lambda n, _: n + 1))
        if max_examples:
            count = min(count, max_examples)
    return ds, count


def _open_held_out(builder, split, max_examples, as_dataset_kwargs):
    ds, num_examples = open_split(builder, split.split, **as_dataset_kwargs)
    mask = split.mask(num_examples)
    if not split.held_out:
        mask = ~mask
    count = int(mask.sum())
    keep = tf.constant(mask)
    ds = (
        ds.enumerate()
        .filter(lambda index, _: tf.gather(keep, index))
        .map(lambda _, example: example)
        .apply(tf.data.experimental.assert_cardinality(count))
    )
    if max_examples:
        ds = ds.take(max_examples)
        count = min(count, max_examples)
    return ds, count


def check_features(builder, keys):
    """Raises UserError unless every `{config_key: feature}` exists."""
    features = builder.info.features
    available = sorted(features.keys()) if hasattr(features, "keys") else []
    for config_key, feature in keys.items():
        if feature not in available:
            raise UserError(
                f"Dataset {builder.info.full_name!r} has no feature "
                f"{feature!r} (set by {config_key}). Its features: "
                f"{', '.join(available)}."
            )


def with_known_cardinality(dataset):
    """`dataset` with its size counted once and asserted, so that Keras does
    not warn about a dataset of unknown size (evaluation pipelines whose
    filters hide their length)."""

    batches = int(dataset.reduce(0, lambda n, _: n + 1))
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))


# ----------------------------------------------------------------------------
# Training input: a pure function of (seed, epoch), shardable per replica.


def _default_batch(dataset, batch_size):
    return dataset.batch(batch_size, drop_remainder=True)


@dataclasses.dataclass
class TrainStream:
    """Training batches as a pure function of `(seed, epoch)`.

    Why: an interrupted run must resume with exactly the batches the
    uninterrupted run would have seen, and `tf.distribute` workers must
    split every global batch between them without overlap. Stateful
    `shuffle` and random augmentation restart from scratch in a new process,
    so neither holds with a plain `tf.data` pipeline. Here epoch `e` is:

    1. `examples` (a fixed order, cached) shuffled with a seed derived from
       `(seed, e)`; the last partial global batch is dropped, so every step
       has exactly `global_batch_size` examples (static shapes, exact loss
       scaling across replicas);
    2. split into global batches; each of the `R` replicas gets the
       `global_batch_size / R` consecutive examples of its slot, each input
       pipeline (worker) the slots of its local replicas (every worker
       reads and shuffles the whole split, so the split of a global batch is
       exact whatever the number or sizes of the TFDS files);
    3. `prepare(example, seed)` on the examples of this pipeline only, with
       a stateless seed derived from `(seed, e, position in the epoch)`, so
       augmentation is identical on any number of workers and after resume;
    4. batched into per-replica batches by `batch(dataset, size)`.

    With one replica the global batch `k` of epoch `e` is the same on every
    run of the same seed; with `R` replicas the union of the replicas'
    batches of step `k` is that same global batch.

    Args:
        examples: `tf.data.Dataset` of decoded examples in a deterministic
            order (cache it when it fits in memory: every epoch rereads it).
        num_examples: number of elements of `examples`.
        global_batch_size: examples per step over all replicas.
        seed: the run's seed.
        shuffle_buffer: `tf.data` shuffle buffer (capped at `num_examples`).
        prepare: optional `(example, seed) -> element`, `seed` a `[2]` int64
            tensor for stateless random ops (`tf.image.stateless_*`); the
            per-example work (augmentation, one-hot targets).
        prepare_batch: optional `(examples, seeds) -> elements`, the
            vectorised form of `prepare` (used instead of it): `examples`
            a per-replica batch, `seeds` `[n, 2]` int64 with row `i` the
            seed `prepare` would get for example `i`. It must return what
            mapping `prepare` over the rows would (`experiments.
            batched_random` has TensorFlow's stateless ops for a batch of
            seeds). Much cheaper on small examples, where a per-example
            `map` costs more than the work it does. Needs the default
            `batch`.
        batch: optional `(dataset, batch_size) -> dataset` producing batches
            of exactly `batch_size` consecutive elements (e.g.
            `padded_batch(size, drop_remainder=True)`); default `batch`.
        group: optional `(dataset, epoch_seed) -> dataset` reordering the
            shuffled `(position, example)` stream of the whole epoch
            before it is split between replicas, keeping its length (e.g.
            `sort_windows`: length buckets for padded sequences). It must be
            a pure function of its input and `epoch_seed` (an int).
    """

    examples: object
    num_examples: int
    global_batch_size: int
    seed: int = 0
    shuffle_buffer: int = 10_000
    prepare: Callable | None = None
    prepare_batch: Callable | None = None
    batch: Callable | None = None
    group: Callable | None = None

    @property
    def steps_per_epoch(self):
        """Optimizer steps per epoch (the partial last batch is dropped)."""
        return self.num_examples // self.global_batch_size

    def check(self, num_replicas=1):
        """Raises UserError unless every replica gets an equal batch."""
        if self.steps_per_epoch < 1:
            raise UserError(
                f"The training split has {self.num_examples} examples, "
                f"fewer than one global batch (data.batch_size="
                f"{self.global_batch_size}). Lower data.batch_size."
            )
        if self.prepare_batch is not None and self.batch is not None:
            raise ValueError(
                "`prepare_batch` needs the default batching. Received: "
                f"batch={self.batch!r}"
            )
        if self.global_batch_size % num_replicas:
            raise UserError(
                f"data.batch_size={self.global_batch_size} is the global "
                f"batch; it must be divisible by the {num_replicas} "
                "replicas of the strategy (each gets an equal share)."
            )

    def epoch_seed(self, epoch):
        """The seed of epoch `epoch`: a non-negative int31 of (seed, epoch).

        A Python int (`Dataset.shuffle` takes no tensor seed), mixed by
        NumPy's `SeedSequence` so neighbouring seeds give unrelated orders.
        """

        entropy = [abs(int(self.seed)), int(epoch)]
        state = np.random.SeedSequence(entropy).generate_state(1, np.uint32)
        return int(state[0] >> 1)

    def epoch(self, epoch, context=None):
        """One epoch of this input pipeline's per-replica batches.

        Args:
            epoch: 0-based epoch (a Python int).
            context: a `tf.distribute.InputContext`; `None` is one
                pipeline feeding one replica (global batches).
        """

        replicas = context.num_replicas_in_sync if context else 1
        pipelines = context.num_input_pipelines if context else 1
        pipeline = context.input_pipeline_id if context else 0
        self.check(replicas)
        per_replica = self.global_batch_size // replicas
        # The replicas of one pipeline are consecutive slots of the step.
        local = per_replica * (replicas // pipelines)
        used = self.steps_per_epoch * self.global_batch_size
        epoch_seed = self.epoch_seed(epoch)
        ds = self.examples.shuffle(
            max(1, min(self.shuffle_buffer, self.num_examples)),
            seed=epoch_seed,
            reshuffle_each_iteration=False,
        ).enumerate()
        if self.prepare_batch is not None:
            batches = self._batched_epoch(ds, epoch_seed, used, context)
            return batches.map(
                self._prepare_batch(epoch_seed),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        # A filter (not take) reads the split to its end, so a cache
        # upstream is always completed.
        ds = ds.filter(lambda position, _: position < used)
        if self.group is not None:
            ds = self.group(ds, epoch_seed)
        if pipelines > 1:
            ds = ds.batch(local, drop_remainder=True)
            ds = ds.shard(pipelines, pipeline).unbatch()
        if self.prepare is not None:
            prepare = self.prepare

            def prepare_example(position, example):
                seed = tf.stack([tf.constant(epoch_seed, tf.int64), position])
                return prepare(example, seed)

            ds = ds.map(prepare_example, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(lambda _, example: example)
        return (self.batch or _default_batch)(ds, per_replica)

    def _batched_epoch(self, ds, epoch_seed, used, context):
        """The `(positions, examples)` per-replica batches of `epoch`'s
        enumerated, shuffled stream, for `prepare_batch`.

        The same batches as the per-example path, without any per-example
        function (on small examples each call costs more than the work it
        wraps): whole slots of `local` examples, of which those whose first
        position is below `used` (`used` is a multiple of `local`) when
        the split has more full slots than the epoch uses. Batching, like
        the per-example path's filter, reads the split to its end (so a
        cache upstream is completed).
        """
        replicas = context.num_replicas_in_sync if context else 1
        pipelines = context.num_input_pipelines if context else 1
        per_replica = self.global_batch_size // replicas
        local = per_replica * (replicas // pipelines)
        if self.group is not None:
            ds = ds.filter(lambda position, _: position < used)
            ds = self.group(ds, epoch_seed)
        ds = ds.batch(local, drop_remainder=True)
        if self.group is None and self.num_examples // local > used // local:
            ds = ds.filter(lambda positions, _: positions[0] < used)
        if pipelines > 1:
            ds = ds.shard(pipelines, context.input_pipeline_id)
        if local != per_replica:
            ds = ds.rebatch(per_replica, drop_remainder=True)
        return ds

    def _prepare_batch(self, epoch_seed):
        """`(positions, examples) -> prepare_batch(examples, seeds)`."""
        prepare_batch = self.prepare_batch

        def prepare(positions, examples):
            epoch_seeds = tf.fill(
                tf.shape(positions), tf.constant(epoch_seed, tf.int64)
            )
            seeds = tf.stack([epoch_seeds, positions], axis=-1)
            return prepare_batch(examples, seeds)

        return prepare

    def dataset(self, context=None, initial_epoch=0, epochs=1):
        """Epochs `[initial_epoch, epochs)` back to back (see `epoch`).

        Pass `steps_per_epoch` to `model.fit`, so Keras keeps one iterator
        across epochs. A resumed run starts at its first unfinished epoch
        and sees exactly the batches of the uninterrupted run. The epochs
        are concatenated (each epoch's iterator starts when the previous
        one ends, so an upstream `cache` is complete before it is reread).
        """

        if epochs <= initial_epoch:
            raise ValueError(
                f"No epoch to train: initial_epoch={initial_epoch}, "
                f"epochs={epochs}"
            )
        ds = self.epoch(int(initial_epoch), context)
        for e in range(int(initial_epoch) + 1, int(epochs)):
            ds = ds.concatenate(self.epoch(e, context))
        return ds.prefetch(tf.data.AUTOTUNE)


def sort_windows(global_batch_size, window_batches, length):
    """A `TrainStream.group` that buckets sequences by length.

    The shuffled epoch is cut into windows of `window_batches` global
    batches; inside a window the examples are sorted by `length(example)`,
    cut into global batches, and those batches put in a random order
    (seeded by the epoch). Batches then hold examples of similar length
    (little padding) while every global batch stays whole, so the split
    between replicas and resuming stay exact — what
    `bucket_by_sequence_length` gives a single process.

    Args:
        global_batch_size: examples per step over all replicas.
        window_batches: global batches per sorted window.
        length: `example -> scalar int tensor` of an unbatched example whose
            components are 1-D tensors (batched raggedly).
    """

    window = global_batch_size * window_batches

    def group(ds, epoch_seed):
        def sort(position, example, index):
            lengths = tf.map_fn(
                lambda i: tf.cast(
                    length(tf.nest.map_structure(lambda t: t[i], example)),
                    tf.int64,
                ),
                tf.range(tf.shape(position)[0], dtype=tf.int64),
                fn_output_signature=tf.int64,
            )
            order = tf.argsort(lengths, stable=True)
            size = tf.shape(order)[0]
            chunks = size // global_batch_size
            perm = tf.random.experimental.stateless_shuffle(
                tf.range(chunks),
                seed=tf.stack(
                    [
                        tf.constant(epoch_seed, tf.int64),
                        tf.cast(index, tf.int64),
                    ]
                ),
            )
            body = tf.reshape(order[: chunks * global_batch_size], [chunks, -1])
            order = tf.concat(
                [
                    tf.reshape(tf.gather(body, perm), [-1]),
                    order[chunks * global_batch_size :],
                ],
                axis=0,
            )
            return tf.gather(position, order), tf.nest.map_structure(
                lambda t: tf.gather(t, order), example
            )

        ds = ds.ragged_batch(window).enumerate()
        ds = ds.map(lambda index, batch: sort(*batch, index))
        return ds.unbatch()

    return group


def damaged_data_error(data_name, data_dir, err):
    """The `DamagedDataError` of a `tf.errors.DataLossError` while reading
    dataset `data_name`: names the damaged file(s) and how to rebuild them.

    TensorFlow's message ("corrupted record at 188") names no file, so the
    dataset's record files are read once more, each on its own, to find
    the damaged ones.
    """
    try:
        folder = load_builder(data_name, data_dir, download=False).data_dir
    except UserError:
        folder = None
    damaged = []
    files = (
        sorted(glob.glob(os.path.join(folder, "*.tfrecord*"))) if folder else []
    )
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError:
            damaged.append(path)
    what = ", ".join(damaged) if damaged else f"a file of {folder or data_name}"
    # TensorFlow's line that says what is wrong, e.g. "corrupted record
    # at 188" (the first line is often only "Graph execution error:").
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if " record" in line), "")
    detail = f" ({detail})" if detail else ""
    if is_path(data_name):
        rebuild = "rebuild that dataset directory where it was made"
    else:
        imports = (
            " --imports experiments.datasets"
            if data_name.split("/")[0] in own_builder_names()
            else ""
        )
        target = data_dir or "~/tensorflow_datasets"
        rebuild = (
            f"regenerate it with: tfds build {data_name}{imports} "
            f"--data_dir {target} --overwrite"
        )
    return DamagedDataError(f"Damaged data file {what}{detail}: {rebuild}.")
