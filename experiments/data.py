"""Shared TFDS access: official names, the project's builders, or a path.

Every task loads its data through `load_builder`, which returns a prepared
`tfds.core.DatasetBuilder` or raises one `UserError` saying how to obtain
the data — never a traceback from deep inside TFDS, and never minutes of
download retries on a machine without network.
"""

import os
import socket

from experiments.errors import UserError
from experiments.errors import close_matches

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
    import tensorflow_datasets as tfds

    import experiments.datasets

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
    import tensorflow_datasets as tfds

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

    import tensorflow_datasets as tfds

    import experiments.datasets  # noqa: F401  (registers the builders)

    if data_dir:
        data_dir = os.path.expanduser(data_dir)
    try:
        builder = tfds.builder(
            name, data_dir=data_dir, **(builder_kwargs or {})
        )
    except tfds.core.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        matches = close_matches(name.split("/")[0], known)
        hint = f" Did you mean: {', '.join(matches)}?" if matches else ""
        raise UserError(
            f"Unknown dataset {name!r}.{hint} Use an official TFDS name "
            f"(https://www.tensorflow.org/datasets/catalog), one of the "
            f"project's datasets ({', '.join(own_builder_names())}), or the "
            "path of a prepared TFDS dataset directory."
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


def open_split(builder, split, max_examples=0, **as_dataset_kwargs):
    """`(dataset, num_examples)` of a (possibly sliced) split.

    Args:
        builder: a prepared TFDS builder.
        split: split name, slicing allowed (`"train[:90%]"`).
        max_examples: keep only the first N examples (0: all).
        **as_dataset_kwargs: passed to `builder.as_dataset`.

    Raises:
        UserError: unknown split (the message lists the dataset's splits).
    """
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
