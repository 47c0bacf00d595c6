"""Config machinery: named experiments, dotted overrides, type checks."""

import dataclasses

import pytest

from experiments import config as config_lib
from experiments.errors import UserError


def test_required_named_experiments_exist():
    names = config_lib.experiment_names()
    for required in (
        "digits",
        "digits_cbam_resnet20",
        "digits_resnet20",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "cifar100",
    ):
        assert required in names
    config = config_lib.get_experiment("digits_cbam_resnet20")
    assert config.data.name == "digits"
    assert config.model.name == "cbam_resnet20"
    # Digits must not be flipped: a flipped digit changes meaning.
    assert "flip" not in config.data.augment


def test_get_experiment_returns_fresh_copies():
    a = config_lib.get_experiment("digits")
    a.train.epochs = 1
    assert config_lib.get_experiment("digits").train.epochs != 1


def test_unknown_experiment_lists_close_matches():
    with pytest.raises(UserError, match="Did you mean: .*digits"):
        config_lib.get_experiment("digitz")


def test_overrides_convert_types():
    config = config_lib.apply_overrides(
        config_lib.get_experiment("digits"),
        [
            "train.learning_rate=0.2",
            "data.batch_size=16",
            "data.cache=false",
            "train.jit_compile=none",
            "data.image_size=[16,16]",
            "model.attention=se",
            'model.kwargs.attention_kwargs={"reduction": 8}',
            "model.kwargs.width=8",
            "seed=3",
        ],
    )
    assert config.train.learning_rate == 0.2
    assert config.data.batch_size == 16
    assert config.data.cache is False
    assert config.train.jit_compile is None
    assert config.data.image_size == [16, 16]
    assert config.model.kwargs["attention"] == "se"
    assert config.model.kwargs["attention_kwargs"] == {"reduction": 8}
    assert config.model.kwargs["width"] == 8
    assert config.seed == 3


def test_overrides_do_not_mutate_the_original():
    original = config_lib.get_experiment("digits")
    changed = config_lib.apply_overrides(original, ["train.epochs=2"])
    assert changed.train.epochs == 2
    assert original.train.epochs != 2


def test_unknown_key_lists_valid_keys_and_suggestion():
    with pytest.raises(UserError) as err:
        config_lib.apply_overrides(
            config_lib.get_experiment("digits"), ["train.lr=1"]
        )
    message = str(err.value)
    assert "Did you mean: train.learning_rate" in message
    assert "Valid keys:" in message and "data.batch_size" in message


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=abc", "expected an integer.*train.epochs='abc'"),
        ("train.learning_rate=fast", "expected a number"),
        ("data.cache=maybe", "expected a boolean"),
        ("train.jit_compile=sometimes", "boolean.*or none"),
    ],
)
def test_bad_value_type_names_key_and_value(override, expected):
    with pytest.raises(UserError, match=expected):
        config_lib.apply_overrides(
            config_lib.get_experiment("digits"), [override]
        )


def test_malformed_override_and_group_keys():
    digits = config_lib.get_experiment("digits")
    with pytest.raises(UserError, match="key=value"):
        config_lib.apply_overrides(digits, ["train.epochs"])
    with pytest.raises(UserError, match="group of settings.*train.epochs"):
        config_lib.apply_overrides(digits, ["train=1"])
    with pytest.raises(UserError, match="Unknown config key"):
        config_lib.apply_overrides(digits, ["train.epochs.x=1"])


def test_to_dict_and_diff():
    a = config_lib.to_dict(config_lib.get_experiment("digits"))
    b = config_lib.to_dict(
        config_lib.apply_overrides(
            config_lib.get_experiment("digits"), ["train.epochs=7"]
        )
    )
    assert a["model"]["name"] == "cbam_resnet20"
    assert config_lib.diff(a, a) == []
    assert config_lib.diff(a, b) == [
        f"train.epochs: {a['train']['epochs']!r} -> 7"
    ]


def test_valid_keys_cover_every_field():
    config = config_lib.get_experiment("digits")
    keys = config_lib.valid_keys(config)
    assert "model.kwargs.*" in keys
    assert "data.image_key" in keys  # the image task's data config
    n_leaves = sum(
        len(dataclasses.fields(getattr(config, f.name)))
        if dataclasses.is_dataclass(getattr(config, f.name))
        else 1
        for f in dataclasses.fields(config)
    )
    assert len(keys) == n_leaves


def test_registering_twice_is_an_error():
    config_lib.experiment_names()  # loads the named experiments
    with pytest.raises(ValueError, match="already registered"):
        config_lib.register_experiment("digits")(lambda: None)
