"""Every registry reports an unknown name the same way: one exception type
(`layers.naming.UnknownNameError`) and one "Did you mean: ...?" hint."""

import doctest

import pytest

import zoo
from benchmarks import registry as benchmark_registry
from experiments import config as config_lib
from experiments.errors import UserError
from experiments.tasks import get_task
from layers import LuongAttention
from layers import get_attention
from layers import get_score
from layers import naming
from layers.naming import UnknownNameError

pytestmark = pytest.mark.tf_only

LOOKUPS = {
    "zoo": (lambda: zoo.build("cbam_resnt20"), "cbam_resnet20"),
    "benchmarks": (
        lambda: benchmark_registry.get_benchmark("self_atention"),
        "self_attention",
    ),
    "experiments": (
        lambda: config_lib.get_experiment("digits_cbam_resnt20"),
        "digits_cbam_resnet20",
    ),
    "tasks": (lambda: get_task("translaton"), "translation"),
    "config keys": (
        lambda: config_lib.set_value(
            config_lib.get_experiment("digits"), "train.learnin_rate", "1"
        ),
        "train.learning_rate",
    ),
    "scores": (lambda: get_score("genral"), "general"),
    "attention lookup": (lambda: get_attention("cbma"), "cbam"),
    "Luong scores": (lambda: LuongAttention(score="genral"), "general"),
}


@pytest.mark.parametrize("registry", sorted(LOOKUPS))
def test_unknown_name_raises_the_one_type_with_a_hint(registry):
    lookup, expected = LOOKUPS[registry]
    with pytest.raises(UnknownNameError) as info:
        lookup()
    message = str(info.value)
    assert "Did you mean: " in message, message
    hint = message.split("Did you mean: ", 1)[1].split("?", 1)[0]
    assert expected in hint.split(", "), message
    # Both families of callers keep working: lookups catch KeyError,
    # argument checks ValueError.
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)


def test_experiment_names_are_user_errors_for_the_command_line():
    with pytest.raises(UserError) as info:
        config_lib.get_experiment("digitz")
    assert isinstance(info.value, UnknownNameError)
    assert info.value.exit_code == 2
    # A sentence, not KeyError's quoted repr.
    assert str(info.value).startswith("Unknown experiment 'digitz'.")


def test_naming_docstring_examples_run():
    result = doctest.testmod(naming, raise_on_error=False)
    assert result.attempted >= 4
    assert result.failed == 0
