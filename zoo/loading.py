"""`load_model`: reload a saved `.keras` model of this project, safely.

Keras `safe_mode` stays on: a `.keras` file that holds Python code (a
`Lambda` layer's bytecode) is refused. No layer or model of this project
needs safe mode turned off: every one is a registered, config-serialisable
class. A missing, truncated or corrupted file gives one clear `ValueError`
(or `FileNotFoundError`) naming the file and the problem, instead of a
`zipfile`/`h5py` error from deep inside Keras.
"""

import os
import zipfile

import keras


def load_model(path, custom_objects=None, compile=True):
    """Loads a `.keras` file saved by this project (or any Keras 3 model).

    Args:
        path: the `.keras` file.
        custom_objects: extra classes for models that use layers outside
            this project.
        compile: restore the optimizer and loss too (Keras' default).

    Returns:
        The `keras.Model`.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: not a `.keras` archive, truncated or corrupted, weights
            that do not match the config, or an object Keras refuses in
            safe mode (a `Lambda`'s code, a function of a module such as
            `os`); always one line.

    Example:

    >>> import zoo
    >>> model = zoo.build("resnet20", input_shape=(8, 8, 1), num_classes=3)
    >>> model.save("/tmp/resnet.keras")
    >>> zoo.load_model("/tmp/resnet.keras").count_params() > 0
    True
    """
    import layers  # noqa: F401  (registers the project's layers)
    import zoo  # noqa: F401  (registers the models' own layers)

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    if os.path.isdir(path):
        raise ValueError(
            f"{path!r} is a folder, not a `.keras` file. A SavedModel export "
            "loads with `tf.saved_model.load(path)`."
        )
    if not path.endswith(".keras"):
        raise ValueError(
            f"{path!r} is not a `.keras` file (Keras 3 format). Received: "
            f"path={path!r}"
        )
    problem = _archive_problem(path)
    if problem:
        raise ValueError(
            f"Cannot load {path!r}: {problem}. The file is truncated or "
            "corrupted; save the model again (a run folder's model.keras is "
            "rewritten by rerunning the same command)."
        )
    try:
        return keras.saving.load_model(
            path,
            custom_objects=custom_objects,
            compile=compile,
            safe_mode=True,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(_load_error(path, err)) from None


def _innermost(err):
    """The exception at the end of `err`'s chain (the original problem:
    Keras wraps it in one "could not be deserialized" per enclosing
    layer)."""
    seen = {id(err)}
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
        if id(err) in seen:
            break
        seen.add(id(err))
    return err


def _load_error(path, err):
    """One line saying why Keras could not rebuild the model in `path`."""
    inner = _innermost(err)
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    text = " ".join(lines)
    if "could not be loaded" in text or "shape of the target variable" in text:
        # "A total of N objects could not be loaded. Example error message
        # for object <...>: <the problem>" and a list of the objects.
        detail = next(
            (
                line
                for line in lines
                if "expected" in line or "shape of the target" in line
            ),
            lines[0] if lines else "",
        )
        detail = detail.split(" Target variable:")[0]
        return (
            f"Cannot load {path!r}: its weights do not match its config "
            f"({detail})"
        )
    detail = (lines[0] if lines else type(inner).__name__)[:300]
    if "safe_mode" in text or "interpret" in text or "module" in text:
        return (
            f"Cannot load {path!r}: its config names an object Keras will "
            f"not load with safe_mode=True ({detail}). Load only files you "
            "trust."
        )
    return f"Cannot load {path!r}: {detail}"


def _archive_problem(path):
    """Why the `.keras` zip archive at `path` is unreadable, or None."""
    if os.path.getsize(path) == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"the zip archive is damaged ({err})"
    if broken is not None:
        return f"member {broken!r} fails its checksum"
    missing = {"config.json", "model.weights.h5"} - set(names)
    if missing:
        return f"it lacks {', '.join(sorted(missing))}"
    return None
