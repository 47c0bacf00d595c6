"""Tests of the shared argument validators (`layers.validation`)."""

import keras
import pytest

from layers import validation


@pytest.mark.parametrize(
    "check, args, value",
    [
        (validation.check_positive_int, (), 3),
        (validation.check_positive_int, (True,), None),
        (validation.check_int, (0,), 0),
        (validation.check_odd_int, (), 7),
        (validation.check_rate, (), 0.0),
        (validation.check_rate, (), 0.5),
        (validation.check_number, (), -2.5),
        (validation.check_positive_number, (), 1e-6),
        (validation.check_non_negative_number, (), 0),
        (validation.check_bool, (), False),
        (validation.check_seed, (), None),
        (validation.check_seed, (), 42),
        (validation.check_choice, (("a", "b"),), "b"),
    ],
)
def test_valid_values_are_returned(check, args, value):
    assert check("n", value, *args) == value


@pytest.mark.parametrize(
    "check, args, value, expected",
    [
        (validation.check_positive_int, (), 0, "a positive integer"),
        (validation.check_positive_int, (), True, "a positive integer"),
        (validation.check_positive_int, (), 2.0, "a positive integer"),
        (validation.check_positive_int, (), None, "a positive integer"),
        (validation.check_int, (1,), 0, "an integer >= 1"),
        (validation.check_odd_int, (), 4, "an odd positive integer"),
        (validation.check_rate, (), 1.0, r"a float in \[0, 1\)"),
        (validation.check_rate, (), -0.1, r"a float in \[0, 1\)"),
        (validation.check_rate, (), False, r"a float in \[0, 1\)"),
        (validation.check_number, (), "1", "a number"),
        (validation.check_positive_number, (), 0, "a positive number"),
        (validation.check_non_negative_number, (), -1, "a non-negative"),
        (validation.check_bool, (), 1, "a bool"),
        (validation.check_seed, (), 1.5, "an integer or None"),
    ],
)
def test_invalid_values_raise_in_keras_form(check, args, value, expected):
    message = f"`arg` expected {expected}.* Received: arg={value!r}"
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check("arg", value, *args)


def test_choice_message_names_the_choices_and_the_value():
    with pytest.raises(ValueError) as err:
        validation.check_choice("arg", "c", ("a", "b"))
    assert str(err.value) == (
        "`arg` must be one of ('a', 'b'). Received: arg='c'"
    )
    assert validation.check_choice("arg", "a", ("a", "b")) == "a"


def test_positive_int_message_matches_the_contract():
    with pytest.raises(ValueError) as err:
        validation.check_positive_int("num_heads", 0)
    assert str(err.value) == (
        "`num_heads` expected a positive integer. Received: num_heads=0"
    )
    with pytest.raises(ValueError, match="positive integer or None"):
        validation.check_positive_int("units", -1, allow_none=True)


def test_rate_is_returned_as_float():
    assert isinstance(validation.check_rate("dropout", 0), float)


def test_activation_resolves_or_names_the_argument():
    assert validation.check_activation("act", "relu") is keras.activations.relu
    with pytest.raises(ValueError, match="Received: act='nope'"):
        validation.check_activation("act", "nope")


def test_rank_names_layer_and_shape():
    assert validation.check_rank([2, 3, 4], 3, "L", "tokens") == (2, 3, 4)
    with pytest.raises(ValueError, match=r"L expects tokens.*\(2, 3\)"):
        validation.check_rank((2, 3), 3, "L", "tokens")
