"""Atomic SavedModel export shared by every task (DESIGN.md export contract).

`export_saved_model(path, model, serving_fn)` writes a SavedModel whose
`serving_default` signature is `serving_fn` (a `tf.function` with an input
signature), through `keras.export.ExportArchive`. The archive is written to
a temporary folder next to `path` and renamed into place
(`experiments.atomic.replacing`), so a failure never leaves a half-written
export. The result loads with
`tf.saved_model.load` in a process that never imports this project.
"""

import contextlib
import contextvars

import keras
import tensorflow as tf

from experiments import atomic
from experiments import training


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


# Largest batch a serving request may carry, unless the export sets its
# own (`serving_max_batch` of an experiment): bigger requests are refused
# with "Bad request" instead of exhausting the server's memory.
DEFAULT_MAX_BATCH = {"strings": 4096, "images": 1024}
_max_batch = contextvars.ContextVar("max_batch", default=None)


@contextlib.contextmanager
def serving_limits(max_batch=None):
    """Sets the maximum serving batch of the exports made inside the block.

    Args:
        max_batch: the largest batch a request may carry; `None` or 0: the
            defaults of `DEFAULT_MAX_BATCH` (by input kind).
    """
    if max_batch is not None and int(max_batch) < 0:
        raise ValueError(
            f"max_batch must be >= 0. Received: max_batch={max_batch}"
        )
    token = _max_batch.set(int(max_batch) if max_batch else None)
    try:
        yield
    finally:
        _max_batch.reset(token)


def max_batch_for(dtype):
    """The maximum serving batch for inputs of `dtype` (see
    `serving_limits`)."""
    kind = "strings" if tf.as_dtype(dtype) == tf.string else "images"
    return _max_batch.get() or DEFAULT_MAX_BATCH[kind]


def shape_text(value):
    """The shape of `value` as a string tensor, e.g. "1, 8, 8, 3" (an
    error message prints it in brackets, with every dimension)."""
    return tf.strings.reduce_join(
        tf.strings.as_string(tf.shape(value)), separator=", "
    )


def serving_input(value, shape, description, nonempty_axes=()):
    """Checks a serving input at run time; returns it with a static shape.

    A loaded `serving_default` signature does not check the rank or shape
    of its arguments, and a check against the signature's own static shape
    is optimised away. So exporters declare inputs of unknown shape
    (`tf.TensorSpec(None, dtype)`) and call this first: a request of the
    wrong rank or channel count, or a batch larger than the export's
    maximum (`serving_limits`), fails with one clear
    `InvalidArgumentError` naming the expected layout and the whole shape
    received, instead of an error from deep inside the model.

    Args:
        value: the input tensor (any rank); axis 0 is the batch.
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
    limit = max_batch_for(value.dtype)
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

    value = pass_if(ok, value, [message, shape_text(value)])
    # The batch of the checked value: its rank is known to be right here.
    value = pass_if(
        tf.less_equal(tf.shape(value)[0], limit),
        value,
        [
            f"Bad request: a batch of at most {limit} is served (the "
            "export's serving_max_batch). Received shape:",
            shape_text(value),
        ],
    )
    return tf.ensure_shape(value, shape)


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
    size = training.weights_file_size(model, optimizer=False)
    with atomic.replacing(path, size=size) as tmp:
        archive.write_out(tmp, verbose=False)
    return path
