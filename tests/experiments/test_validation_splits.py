"""Validation never uses the test split: held-out slices of the training
split where a dataset has no validation split, refusals where a config
points validation at the test data."""

import hashlib
import os
import types

import pytest
import tensorflow_datasets as tfds

from experiments import config as config_lib
from experiments import data as data_lib
from experiments.errors import UserError


def _fingerprints(builder, split):
    dataset, count = data_lib.open_split(builder, split)
    prints = [
        hashlib.sha1(ex["image"].tobytes() + bytes([ex["label"]])).hexdigest()
        for ex in tfds.as_numpy(dataset)
    ]
    assert len(prints) == count
    return prints


def _fake_builder(*splits):
    return types.SimpleNamespace(
        info=types.SimpleNamespace(splits={name: None for name in splits})
    )


@pytest.mark.parametrize("name", config_lib.experiment_names())
def test_no_experiment_validates_on_its_test_split(name):
    data = config_lib.get_experiment(name).data
    # Whatever its dataset holds, resolving never gives the test split
    # (and raises if the config names it).
    for splits in (("train", "test"), ("train", "validation", "test")):
        resolved = data_lib.resolve_splits(_fake_builder(*splits), data)
        assert "test" not in str(resolved.validation_split)


def test_a_dataset_without_validation_split_holds_out_a_seeded_slice(
    digits_dir,
):
    builder = tfds.builder("digits", data_dir=digits_dir)
    cfg = config_lib.get_experiment("digits").data
    resolved = data_lib.resolve_splits(builder, cfg)
    train = _fingerprints(builder, resolved.train_split)
    validation = _fingerprints(builder, resolved.validation_split)
    assert (len(train), len(validation)) == (1293, 144)  # 10% of 1,437
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(_fingerprints(builder, "train"))
    # The same examples every time; another seed holds out others.
    again = data_lib.resolve_splits(builder, cfg)
    assert _fingerprints(builder, again.validation_split) == validation
    other = data_lib.resolve_splits(
        builder, config_lib.apply_overrides(cfg, ["validation_seed=1"])
    )
    assert set(_fingerprints(builder, other.validation_split)) != set(
        validation
    )
    # The test split is untouched.
    assert resolved.test_split == "test"
    assert not set(_fingerprints(builder, "test")) & set(validation)


def test_a_users_prepared_directory_with_only_train_and_test(digits_dir):
    path = os.path.join(digits_dir, "digits", "1.0.0")
    builder = data_lib.load_builder(path)
    cfg = config_lib.get_experiment("digits").data
    cfg = config_lib.apply_overrides(
        cfg, [f"name={path}", "validation_fraction=0.25"]
    )
    resolved = data_lib.resolve_splits(builder, cfg)
    _, held_out = data_lib.open_split(builder, resolved.validation_split)
    _, rest = data_lib.open_split(builder, resolved.train_split, 100)
    assert held_out == 359 and rest == 100  # 25% of 1,437; first 100 kept


def test_a_dataset_with_its_own_validation_split_uses_it():
    cfg = config_lib.get_experiment("movie_sentences").data
    resolved = data_lib.resolve_splits(
        _fake_builder("train", "validation", "test"), cfg
    )
    assert resolved.validation_split == "validation"
    assert resolved.train_split == "train"


@pytest.mark.parametrize(
    "validation", ["test", "test[:50%]", "train[:5%]+test"]
)
def test_validation_on_the_test_split_is_refused(validation):
    cfg = config_lib.get_experiment("digits").data
    cfg = config_lib.apply_overrides(cfg, [f"validation_split={validation}"])
    with pytest.raises(UserError, match="uses the test split"):
        data_lib.resolve_splits(_fake_builder("train", "test"), cfg)


@pytest.mark.parametrize("fraction", ["0", "1", "1.5"])
def test_validation_fraction_outside_zero_one_is_refused(fraction):
    cfg = config_lib.get_experiment("digits").data
    cfg = config_lib.apply_overrides(cfg, [f"validation_fraction={fraction}"])
    with pytest.raises(UserError, match="validation_fraction"):
        data_lib.resolve_splits(_fake_builder("train", "test"), cfg)
