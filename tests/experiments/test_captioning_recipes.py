"""The captioner ablation trains exactly the models of the named
digit-scenes experiments."""

import pytest

import zoo
from experiments import config as config_lib
from experiments import runner
from experiments.ablate import parse_model_spec
from experiments.configs.captioning import CAPTIONERS

pytestmark = pytest.mark.tf_only

NAMED = {
    CAPTIONERS[0]: "digit_scenes_soft",
    CAPTIONERS[1]: "digit_scenes_hard",
    CAPTIONERS[2]: "digit_scenes_hard_gumbel",
    CAPTIONERS[3]: "digit_scenes_transformer",
}


def _model_config(config):
    model = zoo.build(config.model.name, vocab_size=14, **config.model.kwargs)
    config = model.get_config()
    config.pop("name")
    return config


@pytest.mark.parametrize("spec", CAPTIONERS)
def test_ablation_rows_are_the_named_experiments(spec):
    base = runner.resolve("digit_scenes_transformer")
    row = config_lib.apply_overrides(base, parse_model_spec(spec))
    named = runner.resolve(NAMED[spec])
    assert row.model.name == named.model.name
    assert _model_config(row) == _model_config(named)
    assert row.train == named.train and row.data == named.data
