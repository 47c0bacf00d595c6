"""Run folders: unique creation, a per-folder lock, config check, the
run record with checksums of the outputs.

Layout of a run folder (every task):

    run.json           the run record, written first (its presence marks a
                       run folder): each start (command, strategy,
                       versions) and the SHA-256 of each output written
    config.json        the resolved ExperimentConfig
    history.csv        one row per finished epoch (1-based `epoch`)
    metrics.json       final metrics (written last: its presence = done)
    checkpoints/       crash-safe, checksummed per-epoch checkpoints
                       (resume; see `experiments.training.RunCheckpoint`)
    workers/           private folders of non-chief tf.distribute workers
    tensorboard/       TensorBoard logs
    model.keras        the trained model (Keras format)
    saved_model/1/     the exported SavedModel (atomic), in the numbered
                       version folder TF Serving's model_base_path expects
    plots/             PNG figures
    *.txt / *.md       task reports (e.g. classification_report.txt)

The runner only touches files it created: `--out` must be a new or empty
folder or an earlier run folder, and every file is written through
`experiments.atomic` under a temporary name only this project uses.
"""

import datetime
import errno
import fcntl
import json
import os
import time

from experiments import atomic
from experiments import config as config_lib
from experiments.errors import UserError

# The run folder's files are written atomically; the tasks import these.
write_json = atomic.write_json
write_text = atomic.write_text

# Where a run exports its SavedModel: version 1 under `saved_model/`, so the
# `saved_model/` folder is a TF Serving `model_base_path` as it is.
SAVED_MODEL = os.path.join("saved_model", "1")

RECORD = "run.json"
LOCK = ".lock"
WORKERS = "workers"  # the private folders of non-chief workers


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


def write_summary(out, stem, summary, table):
    """Writes a multi-run summary: `<stem>.json` and the markdown `table`
    as `<stem>.md` in folder `out`; prints the table.

    Returns:
        `summary` with `"out"` set to `out`.
    """
    write_json(os.path.join(out, f"{stem}.json"), summary)
    write_text(os.path.join(out, f"{stem}.md"), table)
    print("\n" + table, flush=True)
    print(f"Written to {os.path.join(out, stem + '.md')}", flush=True)
    summary["out"] = out
    return summary


def damaged_outputs(path):
    """Outputs of the run folder `path` (`model.keras`, `saved_model`)
    that are missing or no longer match the SHA-256 in its run record."""
    try:
        with open(os.path.join(path, RECORD)) as f:
            outputs = json.load(f).get("outputs", {})
    except (OSError, ValueError, AttributeError):
        return []
    damaged = []
    for name, entry in outputs.items():
        output = os.path.join(path, name)
        if not os.path.exists(output):
            damaged.append(f"{output} is missing")
        elif atomic.sha256(output) != entry.get("sha256"):
            damaged.append(f"{output} differs from its recorded SHA-256")
    return damaged


def finished_metrics(path, config):
    """The metrics of a finished run of `config` in folder `path`, or None.

    None when the run did not finish, ran another config, or one of its
    outputs was damaged since it was written (warned about: running the
    same config in that folder again rewrites the outputs).
    """
    metrics_path = os.path.join(path, "metrics.json")
    config_path = os.path.join(path, "config.json")
    if not (os.path.exists(metrics_path) and os.path.exists(config_path)):
        return None
    with open(config_path) as f:
        if json.load(f) != config_lib.to_dict(config):
            return None
    damaged = damaged_outputs(path)
    if damaged:
        print(
            "warning: " + "; ".join(damaged) + ". Running it again.",
            flush=True,
        )
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
        self._check_is_run_folder()
        try:
            os.makedirs(self.path, exist_ok=True)
            lock = open(os.path.join(self.path, LOCK), "w")
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
            if not os.path.exists(self.file(RECORD)):
                self.write_record({"starts": [], "outputs": {}})
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

    def _check_is_run_folder(self):
        """Refuses an existing folder that holds files of someone else."""
        if not os.path.lexists(self.path):
            return
        if not os.path.isdir(self.path):
            raise UserError(
                f"--out {self.path!r} is a file, not a folder. Pass a new "
                "folder (it is created) or the folder of an earlier run."
            )
        try:
            names = set(os.listdir(self.path))
        except OSError as err:
            raise _unwritable(self.path, err) from None
        # A non-chief worker of a multi-worker run may create its private
        # `workers/` folder before the chief has written `run.json`.
        if RECORD not in names and names - {LOCK, WORKERS}:
            raise UserError(
                f"--out {self.path!r} is not empty and not a run folder (it "
                f"has no {RECORD}); nothing in it was touched. Pass a new or "
                "empty folder, or the folder of an earlier run."
            )

    def _remove_stale_temporaries(self):
        """Deletes what a killed writer of this folder left half-written.

        Every file and export is written under a temporary name of
        `experiments.atomic` and renamed into place, so a kill leaves only
        such names. With the folder lock held no other process writes here
        (the workers' folders have locks of their own and are skipped).
        """
        for root, folders, files in os.walk(self.path):
            if root == self.path and WORKERS in folders:
                folders.remove(WORKERS)
            for name in [*folders, *files]:
                if atomic.is_temporary(name):
                    atomic.remove(os.path.join(root, name))
            folders[:] = [f for f in folders if not atomic.is_temporary(f)]

    # --- The run record ----------------------------------------------
    def read_record(self):
        """The run record (`run.json`), `{}` when missing or unreadable."""
        try:
            with open(self.file(RECORD)) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def write_record(self, record):
        write_json(self.file(RECORD), record)

    def record_output(self, name):
        """Records the checksum and size of output `name` (a file or the
        SavedModel folder) in the run record, after writing it."""
        path = self.file(name)
        record = self.read_record()
        record.setdefault("outputs", {})[name] = {
            "sha256": atomic.sha256(path),
            "bytes": atomic.size_of(path),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.write_record(record)

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
            os.path.join(self.run_path, WORKERS, worker.replace(":", "-")),
            config,
        )

    def shared_file(self, *parts):
        """Path of a file of the chief's run folder (may not exist here)."""
        return os.path.join(self.run_path, *parts)
