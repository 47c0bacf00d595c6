"""Every named experiment: defined once as a literal in its config module's
table, valid for its task, and the sequence and text tasks' experiments
cover every model the zoo registers for them."""

import inspect

import pytest

import zoo
from experiments import config as config_lib
from experiments import configs
from experiments.tasks import get_task

pytestmark = pytest.mark.tf_only

CONFIG_MODULES = [
    configs.image_classification,
    configs.text_classification,
    configs.translation,
    configs.captioning,
]


@pytest.mark.parametrize("name", config_lib.experiment_names())
def test_named_experiment_is_valid_for_its_task(name):
    config = config_lib.get_experiment(name)
    task = get_task(config.task)
    # Settings, batch sizes, the model name and its keyword arguments.
    task.validate(config)
    assert zoo.get_model_info(config.model.name).task == task.name


def test_each_name_is_a_literal_in_one_table():
    tables = {}
    for module in CONFIG_MODULES:
        source = inspect.getsource(module)
        for name in module.EXPERIMENTS:
            assert f'"{name}": ' in source, (module.__name__, name)
            assert name not in tables, (name, tables.get(name))
            tables[name] = module.__name__
    assert sorted(tables) == config_lib.experiment_names()


@pytest.mark.parametrize(
    "task", ["text_classification", "translation", "image_captioning"]
)
def test_experiments_cover_every_zoo_model_of_the_task(task):
    models = {
        config.model.name
        for config in map(
            config_lib.get_experiment, config_lib.experiment_names()
        )
        if config.task == task
    }
    assert models == set(zoo.list_models(task=task))
