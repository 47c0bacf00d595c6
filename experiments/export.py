"""Atomic SavedModel export shared by every task (DESIGN.md export contract).

`export_saved_model(path, model, serving_fn)` writes a SavedModel whose
`serving_default` signature is `serving_fn` (a `tf.function` with an input
signature), through `keras.export.ExportArchive`. The archive is written to
a temporary folder next to `path` and renamed into place, so a failure
never leaves a half-written export. The result loads with
`tf.saved_model.load` in a process that never imports this project.
"""

import contextlib
import os
import shutil
import uuid

import keras
import tensorflow as tf


def pass_if(ok, value, message):
    """`value` if the scalar bool `ok`, else an `InvalidArgumentError`.

    A data dependency (not only a control dependency on an assertion,
    which graph optimisations may run after the ops it should guard):
    nothing downstream of the returned tensor runs on a bad input.

    Args:
        ok: scalar bool tensor.
        value: the tensor to pass through.
        message: list of strings and tensors printed by the error.
    """

    def fail():
        check = tf.debugging.Assert(False, message)
        with tf.control_dependencies([check]):
            return tf.zeros([0] * max(1, value.shape.rank or 1), value.dtype)

    return tf.cond(ok, lambda: tf.identity(value), fail)


def serving_input(value, shape, description, nonempty_axes=()):
    """Checks a serving input at run time; returns it with a static shape.

    A loaded `serving_default` signature does not check the rank or shape
    of its arguments, and a check against the signature's own static shape
    is optimised away. So exporters declare inputs of unknown shape
    (`tf.TensorSpec(None, dtype)`) and call this first: a request of the
    wrong rank or channel count fails with one clear `InvalidArgumentError`
    naming the expected layout and the shape received, instead of an error
    from deep inside the model.

    Args:
        value: the input tensor (any rank).
        shape: expected shape, `None` for any size (e.g. `[None, None,
            None, 3]`); its length is the expected rank.
        description: what the input is, for the message, e.g. "`images`:
            a uint8 batch [batch, height, width, 3]".
        nonempty_axes: axes that must have at least one element (e.g. the
            height and width of images).

    Returns:
        `value` with the static shape `shape`.
    """

    received = tf.shape(value)
    message = f"Bad request: expected {description}. Received shape:"

    def sizes_ok():
        checks = [
            tf.equal(received[axis], size)
            for axis, size in enumerate(shape)
            if size is not None
        ] + [tf.greater(received[axis], 0) for axis in nonempty_axes]
        return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)

    ok = tf.cond(
        tf.equal(tf.size(received), len(shape)),
        sizes_ok,
        lambda: tf.constant(False),
    )

    value = pass_if(ok, value, [message, received])
    return tf.ensure_shape(value, shape)


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a temporary folder that replaces `path` on success.

    The temporary folder sits next to `path` (same filesystem, so the final
    `os.rename` is atomic). On an exception it is deleted and `path` is left
    untouched. An existing `path` is replaced.
    """
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if not os.path.isdir(tmp):
            raise RuntimeError(f"Nothing was written to {tmp}")
        old = None
        if os.path.exists(path):
            old = os.path.join(parent, f".{name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(path, old)
        os.rename(tmp, path)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def export_saved_model(path, model, serving_fn, extra_endpoints=None, track=()):
    """Exports `model` with `serving_fn` as `serving_default`, atomically.

    Args:
        path: destination folder of the SavedModel.
        model: the `keras.Model` whose variables the functions use.
        serving_fn: a `tf.function` with an `input_signature`, returning a
            dict of named output tensors.
        extra_endpoints: optional `{name: tf.function}` of more signatures.
        track: further trackable objects the functions use (tokenisers,
            lookup tables), saved with the model.

    Returns:
        `path`.
    """

    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in track:
        archive.track(resource)
    archive.add_endpoint("serving_default", serving_fn)
    for name, fn in (extra_endpoints or {}).items():
        archive.add_endpoint(name, fn)
    with atomic_directory(path) as tmp:
        archive.write_out(tmp, verbose=False)
    return path
