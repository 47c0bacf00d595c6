"""Fixtures of the experiment tests: prepared digits data, tiny runs."""

import pytest

# Settings that make a digits run take seconds: few examples, a depth-8
# ResNet (one block per stage), one or two epochs.
TINY = [
    "data.max_train_examples=64",
    "data.max_eval_examples=40",
    "data.batch_size=32",
    "model.depth=8",
    "eval.attention_maps=2",
]
# Smoke runs skip tf.function tracing (seconds per run); the compiled path
# is covered by the module-scoped finished run and the slow digits run.
EAGER = ["train.run_eagerly=true"]


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """A TFDS data dir with the digits dataset prepared (once per worker)."""
    import tensorflow_datasets as tfds

    import experiments.datasets  # noqa: F401

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("digits", data_dir=data_dir).download_and_prepare()
    return data_dir


def tiny_config(name="digits_resnet20", extra=(), epochs=1):
    from experiments import runner

    return runner.resolve(name, [*TINY, *extra], epochs=epochs)
