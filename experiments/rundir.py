"""Run folders: unique creation, a per-folder lock, config check, atomic files.

Layout of a run folder (every task):

    config.json        the resolved ExperimentConfig
    run.json           how it was started (command, strategy, versions)
    history.csv        one row per finished epoch (1-based `epoch`)
    metrics.json       final metrics (written last: its presence = done)
    checkpoints/       crash-safe per-epoch checkpoints (resume; see
                       `experiments.training.RunCheckpoint`)
    workers/           private folders of non-chief tf.distribute workers
    tensorboard/       TensorBoard logs
    saved_model/1/     the exported SavedModel (atomic), in the numbered
                       version folder TF Serving's model_base_path expects
    plots/             PNG figures
    *.txt / *.md       task reports (e.g. classification_report.txt)
"""

import datetime
import errno
import fcntl
import json
import os
import shutil
import tempfile

from experiments import config as config_lib
from experiments.errors import UserError

# Where a run exports its SavedModel: version 1 under `saved_model/`, so the
# `saved_model/` folder is a TF Serving `model_base_path` as it is.
SAVED_MODEL = os.path.join("saved_model", "1")


def write_json(path, data):
    """Writes JSON atomically (temporary file in the folder, then rename)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path, text):
    """Writes a text file atomically (temporary file, fsync, rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _unwritable(path, err):
    reason = os.strerror(err.errno) if err.errno else str(err)
    return UserError(
        f"Cannot write the run folder {path!r}: {reason}. Pass a writable "
        "--out directory."
    )


def create_unique(root, stem):
    """Creates and returns a new folder `root/stem-<timestamp>[-k]`.

    `os.mkdir` is atomic, so two runs started in the same second get
    different folders.
    """
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as err:
        raise _unwritable(root, err) from None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{stem}-{stamp}")
    for k in range(1, 10_000):
        path = base if k == 1 else f"{base}-{k}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as err:
            raise _unwritable(path, err) from None
    raise UserError(f"Could not create a unique run folder under {root!r}")


def finished_metrics(path, config):
    """The metrics of the finished run of `config` in folder `path`.

    Returns:
        The `metrics.json` dict when the folder holds a finished run
        (`metrics.json` is written last) whose `config.json` equals
        `config`; `None` otherwise.
    """
    metrics_path = os.path.join(path, "metrics.json")
    config_path = os.path.join(path, "config.json")
    if not (os.path.exists(metrics_path) and os.path.exists(config_path)):
        return None
    with open(config_path) as f:
        if json.load(f) != config_lib.to_dict(config):
            return None
    with open(metrics_path) as f:
        return json.load(f)


class RunDir:
    """An open, locked run folder; use as a context manager.

    Args:
        path: the folder (created when missing).
        config: the resolved `ExperimentConfig`; written to `config.json`,
            or compared with an existing one (a different config in an
            existing folder is refused, so resuming never mixes runs).
    """

    def __init__(self, path, config):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.config = config
        self._lock = None

    def __enter__(self):
        try:
            os.makedirs(self.path, exist_ok=True)
            lock = open(os.path.join(self.path, ".lock"), "w")
        except OSError as err:
            raise _unwritable(self.path, err) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            lock.close()
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise UserError(
                    f"Another run is writing to {self.path!r}. Wait for it or "
                    "pass another --out."
                ) from None
            raise
        self._lock = lock
        try:
            self._remove_stale_temporaries()
            self._check_or_write_config()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _remove_stale_temporaries(self):
        """Deletes what a killed writer of this folder left half-written.

        Every file and export is written under a temporary name (`.tmp-*`,
        `.saved_model.tmp-*`, `.saved_model.old-*`) and renamed into place,
        so a kill leaves only such names. With the folder lock held no
        other process writes here: whatever carries them is stale.
        """

        folders = [self.path] + [
            os.path.join(self.path, sub)
            for sub in ("checkpoints", "saved_model")
        ]
        for folder in folders:
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                stale = name.startswith(".") and (
                    name.startswith(".tmp-")
                    or ".tmp-" in name
                    or ".old-" in name
                )
                if not stale:
                    continue
                path = os.path.join(folder, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.remove(path)
                    except OSError:
                        pass

    def _check_or_write_config(self):
        resolved = config_lib.to_dict(self.config)
        path = self.file("config.json")
        if os.path.exists(path):
            try:
                with open(path) as f:
                    existing = json.load(f)
            except (OSError, ValueError) as err:
                raise UserError(
                    f"{path} is unreadable ({err}); pass another --out."
                ) from None
            changes = config_lib.diff(existing, resolved)
            if changes:
                raise UserError(
                    f"{self.path!r} holds a run with a different config, so "
                    "it cannot be resumed with this command. Differences:\n  "
                    + "\n  ".join(changes)
                    + "\nPass another --out (or the original --set options)."
                )
            return
        write_json(path, resolved)

    def file(self, *parts):
        """Path of a file in the run folder."""
        return os.path.join(self.path, *parts)

    def folder(self, *parts):
        """Path of a sub-folder (created)."""
        path = os.path.join(self.path, *parts)
        os.makedirs(path, exist_ok=True)
        return path


class WorkerDir(RunDir):
    """The private folder of a non-chief `tf.distribute` worker.

    Under `MultiWorkerMirroredStrategy` every worker trains, but only the
    chief writes the run folder (Keras' multi-worker convention). A
    worker's own files (its `history.csv`, its checkpoints, which it must
    write too so that it can resume when the run folder is not on shared
    storage) go to `<run folder>/workers/<task>-<id>/`, locked like a run
    folder, so two workers of the same id never share it.

    Args:
        run_path: the chief's run folder (the same `--out` on every worker).
        config: the resolved `ExperimentConfig`.
        worker: this worker's name, e.g. `"worker:1"`.
    """

    def __init__(self, run_path, config, worker):
        self.run_path = os.path.abspath(os.path.expanduser(run_path))
        super().__init__(
            os.path.join(self.run_path, "workers", worker.replace(":", "-")),
            config,
        )

    def shared_file(self, *parts):
        """Path of a file of the chief's run folder (may not exist here)."""
        return os.path.join(self.run_path, *parts)
