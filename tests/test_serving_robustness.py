"""Serving robustness: bad requests to the exported SavedModel of each task.

One tiny exported model per task (image classifier, text classifier,
translator) is loaded in a child process that never imports this project
(one process for the three models: a process start costs seconds of CPU);
it sends every bad request to each model and records what came back
(output shapes and values, or the error type and message). Each case is its
own test below. A bad request must give a defined result or a clear
error, never a crash of the serving process.

Adding a task: write an `_export_<task>` function returning `(path, input
name)`, add it to `EXPORTERS`, and add its cases to `CASES` and a test per
case.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.once import compute_once
from tests.serving import PROJECT_PACKAGES
from tests.serving import REPO_ROOT

pytestmark = pytest.mark.tf_only

LONG_WORDS = 20_000  # words of the "very long" text request

# A request is a JSON recipe the child turns into a tensor:
# {"dtype": ..., "shape": [...]} (uint8 / float32 / int32 zeros) or
# {"strings": [...]} (a string tensor; "\\x.." escapes give raw bytes).
_IMAGE = {
    "ok": {"dtype": "uint8", "shape": [2, 8, 8, 1]},
    "wrong_dtype": {"dtype": "float32", "shape": [2, 8, 8, 1]},
    "wrong_rank": {"dtype": "uint8", "shape": [8, 8, 1]},
    "empty_batch": {"dtype": "uint8", "shape": [0, 8, 8, 1]},
    "wrong_size": {"dtype": "uint8", "shape": [2, 20, 12, 1]},
    "very_large": {"dtype": "uint8", "shape": [1, 512, 512, 1]},
    "zero_size": {"dtype": "uint8", "shape": [1, 0, 8, 1]},
    "wrong_channels": {"dtype": "uint8", "shape": [2, 8, 8, 3]},
    "strings": {"strings": ["not an image"]},
    "too_large_batch": {"dtype": "uint8", "shape": [1025, 8, 8, 1]},
}
_TEXT = {
    "ok": {"strings": ["good film", "bad film"]},
    "wrong_dtype": {"dtype": "int32", "shape": [2]},
    "wrong_rank": {"strings": [["good film"], ["bad film"]]},
    "empty_batch": {"strings": []},
    "empty_strings": {"strings": ["", "   "]},
    "very_long": {"strings": [" ".join(["good"] * LONG_WORDS)]},
    "non_utf8": {"strings": ["\\xff\\xfe\\xfa bad \\xc3\\x28 film"]},
    "too_large_batch": {"strings": ["film"] * 4097},
}
_CAPTION = {
    "ok": {"dtype": "uint8", "shape": [2, 16, 16, 1]},
    "wrong_dtype": {"dtype": "float32", "shape": [2, 16, 16, 1]},
    "wrong_rank": {"dtype": "uint8", "shape": [16, 16, 1]},
    "empty_batch": {"dtype": "uint8", "shape": [0, 16, 16, 1]},
    "wrong_size": {"dtype": "uint8", "shape": [2, 20, 12, 1]},
    "very_large": {"dtype": "uint8", "shape": [1, 512, 512, 1]},
    "zero_size": {"dtype": "uint8", "shape": [1, 0, 16, 1]},
    "three_channels": {"dtype": "uint8", "shape": [2, 16, 16, 3]},
    "wrong_channels": {"dtype": "uint8", "shape": [2, 16, 16, 2]},
    "strings": {"strings": ["not an image"]},
    "too_large_batch": {"dtype": "uint8", "shape": [1025, 16, 16, 1]},
}
CASES = {
    "image": _IMAGE,
    "text": _TEXT,
    "translation": dict(_TEXT),
    "captioning": _CAPTION,
}

_CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path = [p for p in sys.path if p not in ("", {root!r})]
    import numpy as np
    import tensorflow as tf

    def tensor(recipe):
        if "strings" in recipe:
            def raw(s):
                if isinstance(s, list):
                    return [raw(x) for x in s]
                return s.encode("latin-1").decode("unicode_escape").encode(
                    "latin-1")
            values = raw(recipe["strings"])
            return tf.constant(values, tf.string, shape=(
                [0] if values == [] else None))
        return tf.zeros(recipe["shape"], recipe["dtype"])

    def serve_all(path, name, cases):
        serve = tf.saved_model.load(path).signatures["serving_default"]
        results = {{}}
        for case, recipe in cases.items():
            try:
                out = serve(**{{name: tensor(recipe)}})
                results[case] = {{"outputs": {{
                    k: {{"shape": list(v.shape),
                         "finite": bool(np.all(np.isfinite(v.numpy())))
                         if v.dtype.is_floating else None,
                         "value": v.numpy().tolist()
                         if (v.dtype.is_floating or v.dtype.is_bool)
                         and v.shape.num_elements() < 100 else None}}
                    for k, v in out.items()}}}}
            except Exception as err:  # noqa: BLE001
                results[case] = {{"error": type(err).__name__,
                                  "message": str(err)[:2000]}}
        return results

    results = {{task: serve_all(**model)
               for task, model in json.load(open(sys.argv[1])).items()}}
    leaked = sorted(
        m for m in sys.modules if m.split(".")[0] in {packages!r})
    for task in results:
        results[task]["_leaked"] = leaked
    print(json.dumps(results))
    """
)


def _export_image(tmp):
    import zoo
    from experiments.tasks import get_task
    from experiments.tasks.base import TaskData

    model = zoo.build(
        "mixer_tiny",
        input_shape=(8, 8, 1),
        num_classes=10,
        patch_size=2,
        depth=1,
        embed_dim=8,
    )
    data = TaskData(
        None,
        None,
        None,
        1,
        info={
            "input_shape": [8, 8, 1],
            "label_names": [str(i) for i in range(10)],
        },
    )
    path = os.path.join(tmp, "image")
    get_task("image_classification").export(model, data, None, path)
    return path, "images"


def _export_text(tmp):
    import zoo
    from experiments.tasks.text_classification import export_text_classifier

    model = zoo.build(
        "bigru_attention",
        vocabulary=["good", "bad", "film"],
        num_classes=2,
        sequence_length=10,
        embedding_dim=8,
        rnn_units=4,
    )
    path = os.path.join(tmp, "text")
    export_text_classifier(model, ["negative", "positive"], path)
    return path, "text"


def _export_translation(tmp):
    import zoo
    from experiments.tasks.translation import export_translator
    from experiments.wordpiece import WordPieceTokenizer

    source = ["[PAD]", "[UNK]", "[START]", "[END]", "good", "bad", "film"]
    target = ["[PAD]", "[UNK]", "[START]", "[END]", "gut", "schlecht"]
    model = zoo.build(
        "seq2seq_bahdanau",
        source_vocab_size=len(source),
        target_vocab_size=len(target),
        embedding_dim=8,
        units=8,
    )
    path = os.path.join(tmp, "translation")
    export_translator(
        model,
        WordPieceTokenizer(source),
        WordPieceTokenizer(target),
        path,
        max_source_length=12,
        max_target_length=6,
        beam_width=2,
    )
    return path, "sentences"


def _export_captioning(tmp):
    import zoo
    from experiments.tasks.captioning import export_captioner

    vocabulary = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "digit"]
    model = zoo.build(
        "show_attend_tell_soft",
        vocab_size=len(vocabulary),
        input_shape=(16, 16, 1),
        encoder_filters=(4, 8),
        convs_per_stage=1,
        embedding_dim=8,
        units=8,
        attention_units=8,
        seed=3,
    )
    path = os.path.join(tmp, "captioning")
    export_captioner(model, vocabulary, path, max_caption_length=5)
    return path, "images"


EXPORTERS = {
    "image": _export_image,
    "text": _export_text,
    "translation": _export_translation,
    "captioning": _export_captioning,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`{task: {case: result}}` from one project-free process per model."""
    return compute_once(
        tmp_path_factory, "serving_robustness", lambda: _serve(tmp_path_factory)
    )


def _serve(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    script = _CHILD.format(root=REPO_ROOT, packages=PROJECT_PACKAGES)
    # One serving process for all models: each process start costs seconds
    # of CPU; a crash on any request fails every test of this module.
    manifest = {}
    for task, export in EXPORTERS.items():
        path, name = export(str(tmp))
        manifest[task] = {"path": path, "name": name, "cases": CASES[task]}
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script, str(tmp / "manifest.json")],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"the server crashed:\n{proc.stderr[-4000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    (tmp / "results.json").write_text(json.dumps(results, indent=1))
    return results


def _ok(result, key, shape):
    assert "error" not in result, result
    out = result["outputs"][key]
    assert out["shape"] == shape, out
    if out["finite"] is not None:
        assert out["finite"]
    return out


def _clear_error(result, *words):
    assert "error" in result, f"expected an error, got {result}"
    assert result["error"] in (
        "InvalidArgumentError",
        "ValueError",
        "TypeError",
    ), result
    message = result["message"].lower()
    assert any(w in message for w in words), result["message"]


@pytest.mark.parametrize("task", sorted(EXPORTERS))
def test_never_imports_the_project(served, task):
    assert served[task]["_leaked"] == []


@pytest.mark.parametrize("task", sorted(EXPORTERS))
def test_every_output_has_the_batch_first(served, task):
    # TF Serving's row format ("instances", docs/serving.md) needs every
    # output to have the batch as its first dimension.
    result = served[task]["ok"]
    assert "error" not in result, result
    shapes = {key: out["shape"] for key, out in result["outputs"].items()}
    assert all(shape and shape[0] == 2 for shape in shapes.values()), shapes


# === Image classifier ===


def test_image_ok(served):
    out = _ok(served["image"]["ok"], "probabilities", [2, 10])
    np.testing.assert_allclose(np.sum(out["value"], -1), 1.0, rtol=1e-5)


def test_image_wrong_dtype(served):
    _clear_error(served["image"]["wrong_dtype"], "uint8", "dtype", "float")


def test_image_wrong_rank(served):
    _clear_error(served["image"]["wrong_rank"], "bad request: expected")
    # The whole shape, not TensorFlow's summary of three numbers.
    assert (
        "Received shape:] [8, 8, 1]" in served["image"]["wrong_rank"]["message"]
    )


@pytest.mark.parametrize(
    "task, shape",
    [
        ("image", "1025, 8, 8, 1"),
        ("text", "4097"),
        ("translation", "4097"),
        ("captioning", "1025, 16, 16, 1"),
    ],
)
def test_batch_over_the_serving_maximum(served, task, shape):
    result = served[task]["too_large_batch"]
    _clear_error(result, "bad request: a batch of at most")
    assert f"Received shape:] [{shape}]" in result["message"]


def test_image_empty_batch(served):
    _ok(served["image"]["empty_batch"], "probabilities", [0, 10])
    _ok(served["image"]["empty_batch"], "label", [0])


@pytest.mark.parametrize("case", ["wrong_size", "very_large"])
def test_image_of_another_size_is_resized(served, case):
    batch = _IMAGE[case]["shape"][0]
    out = _ok(served["image"][case], "probabilities", [batch, 10])
    np.testing.assert_allclose(np.sum(out["value"], -1), 1.0, rtol=1e-5)
    # Zeros resized are zeros: the same prediction as the right size.
    np.testing.assert_allclose(
        out["value"][0],
        served["image"]["ok"]["outputs"]["probabilities"]["value"][0],
        rtol=1e-5,
    )
    assert (
        _ok(served["image"][case], "resized", [batch])["value"]
        == [True] * batch
    )
    assert served["image"]["ok"]["outputs"]["resized"]["value"] == [False] * 2


def test_image_without_pixels(served):
    _clear_error(served["image"]["zero_size"], "at least 1x1")
    assert "bad request" in served["image"]["zero_size"]["message"].lower()


def test_image_wrong_channels(served):
    _clear_error(served["image"]["wrong_channels"], "bad request: expected")


def test_image_given_strings(served):
    _clear_error(served["image"]["strings"], "uint8", "dtype", "string")


# === Text classifier and translator (both take a batch of strings) ===

_OUTPUT = {"text": ("probabilities", 2), "translation": ("translation", None)}


def _check_strings_ok(result, task, batch):
    key, width = _OUTPUT[task]
    _ok(result, key, [batch] if width is None else [batch, width])


@pytest.mark.parametrize("task", ["text", "translation"])
def test_strings_ok(served, task):
    _check_strings_ok(served[task]["ok"], task, 2)


@pytest.mark.parametrize("task", ["text", "translation"])
def test_strings_wrong_dtype(served, task):
    _clear_error(served[task]["wrong_dtype"], "string", "dtype", "int32")


@pytest.mark.parametrize("task", ["text", "translation"])
def test_strings_wrong_rank(served, task):
    _clear_error(served[task]["wrong_rank"], "bad request: expected")


@pytest.mark.parametrize("task", ["text", "translation"])
def test_strings_empty_batch(served, task):
    _check_strings_ok(served[task]["empty_batch"], task, 0)


@pytest.mark.parametrize("task", ["text", "translation"])
def test_empty_strings(served, task):
    _check_strings_ok(served[task]["empty_strings"], task, 2)


@pytest.mark.parametrize("task", ["text", "translation"])
def test_very_long_input_is_truncated(served, task):
    _check_strings_ok(served[task]["very_long"], task, 1)
    if task == "translation":
        truncated = served[task]["very_long"]["outputs"]["source_truncated"]
        assert truncated["value"] == [True]
    else:
        tokens = served[task]["very_long"]["outputs"]["tokens"]
        assert tokens["shape"] == [1, 10]  # cut to sequence_length


@pytest.mark.parametrize("task", ["text", "translation"])
def test_non_utf8_bytes(served, task):
    _check_strings_ok(served[task]["non_utf8"], task, 1)


def test_text_empty_strings_get_uniform_zero_attention(served):
    out = served["text"]["empty_strings"]["outputs"]
    np.testing.assert_allclose(
        np.sum(out["probabilities"]["value"], -1), 1.0, rtol=1e-5
    )
    assert np.all(np.asarray(out["attention_weights"]["value"]) == 0.0)


# === Captioner (uint8 images of any size, 1 or 3 channels) ===


def test_caption_ok(served):
    _ok(served["captioning"]["ok"], "caption", [2])


def test_caption_wrong_dtype(served):
    _clear_error(served["captioning"]["wrong_dtype"], "uint8")


def test_caption_given_strings(served):
    _clear_error(served["captioning"]["strings"], "uint8")


def test_caption_wrong_rank(served):
    _clear_error(served["captioning"]["wrong_rank"], "bad request: expected")


def test_caption_empty_batch(served):
    _ok(served["captioning"]["empty_batch"], "caption", [0])


@pytest.mark.parametrize("case", ["wrong_size", "very_large"])
def test_caption_of_another_size_is_resized(served, case):
    batch = _CAPTION[case]["shape"][0]
    _ok(served["captioning"][case], "caption", [batch])
    resized = served["captioning"][case]["outputs"]["resized"]["value"]
    assert resized == [True] * batch


def test_caption_without_pixels(served):
    _clear_error(served["captioning"]["zero_size"], "at least 1x1")


def test_caption_three_channels_are_converted(served):
    _ok(served["captioning"]["three_channels"], "caption", [2])


def test_caption_wrong_channels(served):
    _clear_error(served["captioning"]["wrong_channels"], "1 or 3 channels")
