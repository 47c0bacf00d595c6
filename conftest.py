"""Pytest set-up shared by the whole suite (quiet TF, isolated policies)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No run-time downloads: TFDS must never try the network in tests.
os.environ.setdefault("TFDS_DISABLE_GCS", "1")
# The suite compiles hundreds of tiny XLA programs (JAX, and TF's
# jit-compiled `fit`): cheap LLVM code generation is ~40% faster overall
# and changes no results (no fast-math). Users' runs are unaffected.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0"
    " --xla_llvm_disable_expensive_passes=true",
)

import keras  # noqa: E402
import pytest  # noqa: E402

# Under a second backend these repeat what the TensorFlow run already
# proves with the same code path (parity with Keras's own layers, docs /
# docstring examples, whole CNNs around a block); the layer contracts,
# NumPy references and property tests all still run. Keeps CI < 10 min.
SECOND_BACKEND_REPEATS = (
    "matches_keras",
    "match_keras",
    "docstring_example",
    "inside_small_cnn",
)


def pytest_collection_modifyitems(config, items):
    # Keep tf_only tests visible in the run under another backend as
    # deselected, not skipped: the TF run already executes them.
    if keras.backend.backend() == "tensorflow":
        return
    kept, deselected = [], []
    for item in items:
        repeat = any(key in item.name for key in SECOND_BACKEND_REPEATS)
        drop = "tf_only" in item.keywords or repeat
        (deselected if drop else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(autouse=True)
def _isolate_keras_state():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    # free_memory=False skips a gc.collect() that costs ~0.5 s per test.
    keras.backend.clear_session(free_memory=False)
