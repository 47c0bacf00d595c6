"""Atomic, checksummed writes: the one way this project writes a file.

Every file and folder a run (or a benchmark) writes goes through
`replacing(path)`: the content is written under a temporary name in the
same folder, flushed to disk, then renamed over `path` in one step, so a
reader (or a restarted run) sees either the old content or the new one,
never half of each. Temporaries are named `.azoo-tmp-<pid>-<random>-<name>`
so that clean-up after a crash removes only what this project wrote, never
a user's own dot-files.

A full disk or an exhausted quota (ENOSPC/EDQUOT, also when TensorFlow or
h5py report it in their own exception types) removes the partial file and
raises `DiskFullError`, a `UserError` naming the folder and the space
needed. Where the size of a write is known beforehand (checkpoints, saved
models), the space is reserved first with `posix_fallocate`: HDF5 can
corrupt its own state (and crash the process later) when a write fails
half-way, so a checkpoint must never start on a disk that cannot hold it.

`sha256(path)` fingerprints a file or a whole folder (a SavedModel), for
the checksums a run folder records of its checkpoints and exports.
"""

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import uuid

from experiments.errors import DiskFullError

TEMPORARY_PREFIX = ".azoo-tmp-"

# How TensorFlow and h5py spell the two errors in their own exceptions.
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")
_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# Room kept beyond a write's own size (file-system blocks and metadata).
_SPACE_MARGIN = 64 << 10


def temporary_path(path):
    """A unique temporary name beside `path` (same folder and filesystem)."""
    folder, name = os.path.split(os.path.abspath(path))
    unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return os.path.join(folder, f"{TEMPORARY_PREFIX}{unique}-{name}")


def is_temporary(name):
    """Whether a file name is one of this module's temporaries."""
    return os.path.basename(name).startswith(TEMPORARY_PREFIX)


def is_disk_full(err):
    """Whether `err` (or an exception it was raised from) is ENOSPC/EDQUOT."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if getattr(err, "errno", None) in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(err) for text in _DISK_FULL_TEXTS):
            return True
        err = err.__cause__ or err.__context__
    return False


def _mib(nbytes):
    return f"{nbytes / (1 << 20):.2f} MiB"


def disk_full_error(path, needed=None):
    """The `DiskFullError` of a failed write of `path` (`needed` bytes)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = _mib(shutil.disk_usage(folder).free) + " free"
    except OSError:
        free = "free space unknown"
    need = f"needs about {_mib(needed)}" if needed else "needs more space"
    return DiskFullError(
        f"Disk full: writing {path} {need} ({free} in {folder})."
    )


def ensure_space(path, nbytes):
    """Raises `DiskFullError` unless `nbytes` (plus a margin) fit beside
    `path`.

    The space is reserved for a moment with `posix_fallocate`, which also
    honours disk quotas (a free-space query does not); on file systems
    without it, the free space reported by `statvfs` is compared.
    """
    needed = int(nbytes * 1.02) + _SPACE_MARGIN
    probe = temporary_path(path)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full_error(path, needed) from None
        raise
    try:
        os.posix_fallocate(fd, 0, needed)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full_error(path, needed) from None
        if shutil.disk_usage(os.path.dirname(probe)).free < needed:
            raise disk_full_error(path, needed) from None
    finally:
        os.close(fd)
        os.remove(probe)


def fsync_file(path):
    """Flushes a written file to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path):
    """Makes the renames inside folder `path` durable (where supported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove(path):
    """Deletes a file or folder tree if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        try:
            os.remove(path)
        except OSError:
            pass


@contextlib.contextmanager
def replacing(path, size=None):
    """Yields a temporary path whose content replaces `path` on success.

    Write a file (or a folder, e.g. a SavedModel) at the yielded path; when
    the block ends without an exception it is flushed to disk and renamed
    over `path` (an existing folder is moved aside first and deleted after).
    On an exception the temporary is deleted and `path` keeps its previous
    content; a full disk becomes `DiskFullError`.

    Args:
        path: the final file or folder.
        size: expected size in bytes, when known: the space is checked
            before anything is written (see `ensure_space`).
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    tmp = temporary_path(path)
    try:
        os.makedirs(folder, exist_ok=True)
        if size:
            ensure_space(path, size)
        yield tmp
        if not os.path.lexists(tmp):
            raise RuntimeError(f"Nothing was written to {tmp}")
        if os.path.isdir(tmp):
            old = None
            if os.path.lexists(path):
                old = temporary_path(path)
                os.rename(path, old)
            os.rename(tmp, path)
            if old:
                remove(old)
        else:
            fsync_file(tmp)
            os.replace(tmp, path)
        fsync_folder(folder)
    except DiskFullError:
        raise
    except BaseException as err:
        if is_disk_full(err):
            raise disk_full_error(path, size) from None
        raise
    finally:
        remove(tmp)


def write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically."""
    with replacing(path, size=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def strict_json(data):
    """`data` with non-finite floats as `None`, and the paths replaced.

    JSON has no NaN or infinity (Python's `json` writes bare `NaN`, which
    strict parsers reject). Returns `(clean, replaced)`, `replaced` a list
    of `"key.path (nan)"` strings.
    """
    replaced = []

    def clean(value, where):
        if isinstance(value, dict):
            return {
                k: clean(v, f"{where}.{k}" if where else str(k))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()  # NumPy scalars
        elif hasattr(value, "tolist"):
            return clean(value.tolist(), where)
        if isinstance(value, float) and not math.isfinite(value):
            replaced.append(f"{where or 'value'} ({value})")
            return None
        return value

    return clean(data, ""), replaced


def write_json(path, data, indent=2):
    """Writes strict JSON atomically: NaN/inf become `null`, and a dict
    gains a `"notes"` entry saying which values those were."""
    data, replaced = strict_json(data)
    if replaced and isinstance(data, dict):
        notes = list(data.get("notes") or [])
        notes.append(
            "null stands for a non-finite value: " + ", ".join(replaced)
        )
        data = {**data, "notes": notes}
    write_text(path, json.dumps(data, indent=indent, allow_nan=False) + "\n")


def sha256(path):
    """Hex SHA-256 of a file, or of a folder's relative paths and contents
    (a SavedModel); independent of where the folder lies."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        for root, folders, files in os.walk(path):
            folders.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.path.relpath(full, path).encode() + b"\0")
                digest.update(sha256(full).encode())
        return digest.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path):
    """Bytes of a file, or of all files of a folder."""
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, files in os.walk(path)
            for name in files
        )
    return os.path.getsize(path)
