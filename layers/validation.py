"""Argument validators shared by every layer and model in the project.

Each validator returns the value it checked (so `self.units =
check_positive_int("units", units)` reads as one step) or raises a
`ValueError` in the Keras form, naming the argument and what was received:

    `num_heads` expected a positive integer. Received: num_heads=0

Python booleans are never accepted as numbers (`True` is an `int` in Python,
but `num_heads=True` is always a mistake).

Example:

>>> from layers.validation import check_positive_int, check_rate
>>> check_positive_int("num_heads", 8)
8
>>> check_rate("dropout", 0.1)
0.1
>>> check_positive_int("num_heads", 0)
Traceback (most recent call last):
...
ValueError: `num_heads` expected a positive integer. Received: num_heads=0
"""

import keras


def _fail(name, expected, value):
    raise ValueError(
        f"`{name}` expected {expected}. Received: {name}={value!r}"
    )


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name, value, minimum=None, allow_none=False):
    """Returns `value` if it is an int (`>= minimum` when given)."""
    if value is None and allow_none:
        return value
    if not _is_int(value) or (minimum is not None and value < minimum):
        expected = (
            "an integer" if minimum is None else f"an integer >= {minimum}"
        )
        _fail(name, expected + (" or None" if allow_none else ""), value)
    return value


def check_positive_int(name, value, allow_none=False):
    """Returns `value` if it is an int >= 1 (or None when `allow_none`)."""
    if value is None and allow_none:
        return value
    if not _is_int(value) or value < 1:
        expected = "a positive integer" + (" or None" if allow_none else "")
        _fail(name, expected, value)
    return value


def check_odd_int(name, value):
    """Returns `value` if it is an odd int >= 1.

    Odd kernel sizes keep `"same"` padding symmetric, so each output position
    is centred on its input position.
    """
    if not _is_int(value) or value < 1 or value % 2 == 0:
        _fail(name, "an odd positive integer", value)
    return value


def check_rate(name, value):
    """Returns `value` as a float if it lies in `[0, 1)` (a dropout rate)."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        _fail(name, "a float in [0, 1)", value)
    return float(value)


def check_number(name, value):
    """Returns `value` if it is an int or a float."""
    if not _is_number(value):
        _fail(name, "a number", value)
    return value


def check_positive_number(name, value):
    """Returns `value` if it is a number > 0 (an epsilon, a temperature)."""
    if not _is_number(value) or not value > 0:
        _fail(name, "a positive number", value)
    return value


def check_non_negative_number(name, value):
    """Returns `value` if it is a number >= 0."""
    if not _is_number(value) or not value >= 0:
        _fail(name, "a non-negative number", value)
    return value


def check_bool(name, value):
    """Returns `value` if it is a Python bool."""
    if not isinstance(value, bool):
        _fail(name, "a bool", value)
    return value


def check_seed(name, value):
    """Returns `value` if it is an int or None (a random seed)."""
    if value is not None and not _is_int(value):
        _fail(name, "an integer or None", value)
    return value


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`; otherwise raises
    "`pooling` must be one of ('mean', 'max'). Received: pooling='sum'"."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {tuple(choices)}. Received: "
            f"{name}={value!r}"
        )
    return value


def check_activation(name, value):
    """Resolves a Keras activation (name, callable or config)."""
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{name}` expected the name of a Keras activation. "
            f"Received: {name}={value!r}"
        ) from err


def check_rank(input_shape, rank, layer_name, what):
    """Returns `input_shape` as a tuple if it has the given rank.

    Args:
        input_shape: the shape to check.
        rank: the rank required.
        layer_name: the layer named in the message.
        what: the input's description, e.g. `"tokens [B, N, C]"`.
    """
    shape = tuple(input_shape)
    if len(shape) != rank:
        raise ValueError(
            f"{layer_name} expects {what} (a rank-{rank} tensor). "
            f"Received: inputs.shape={shape}"
        )
    return shape


def check_token_shape(input_shape, layer_name, what="tokens [B, N, C]"):
    """Returns `input_shape` as a tuple if it is `[B, N, C]` tokens with
    the number of tokens `N` and channels `C` known.

    Args:
        input_shape: the shape to check.
        layer_name: the layer named in the message.
        what: the input's description, as in `check_rank`.
    """
    shape = check_rank(input_shape, 3, layer_name, what)
    if shape[1] is None or shape[2] is None:
        raise ValueError(
            f"{layer_name} needs a known number of tokens and channels. "
            f"Received: inputs.shape={shape}"
        )
    return shape
