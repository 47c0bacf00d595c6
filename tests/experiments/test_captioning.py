"""Captioning experiment: caption normalisation and vocabulary, the
attention localisation metric against hand-computed cases, the
images-in/captions-out SavedModel served in a fresh process that never
imports this project (wrong sizes, channels, empty batches), CLI errors;
behind `slow`, a tiny end-to-end run and the digit-scenes target run."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from experiments import runner
from experiments.cli import main
from experiments.tasks import captioning
from zoo.tokens import RESERVED_TOKENS

pytestmark = pytest.mark.tf_only

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# === Text ===


def test_normalize_and_vocabulary():
    text = captioning.normalize_captions(
        tf.constant(["A man, riding a HORSE!", "  a dog's  bone. "])
    )
    assert [t.decode() for t in text.numpy()] == [
        "a man riding a horse",
        "a dog's bone",
    ]
    vocab = captioning.build_vocabulary(
        ["a man riding a horse", "a dog's bone", "a horse"], min_count=2
    )
    assert vocab == ["[PAD]", "[UNK]", "[START]", "[END]", "a", "horse"]
    assert captioning.build_vocabulary(["b a b"], max_size=1)[4:] == ["b"]


# === Localisation ===


def test_box_overlap_matrix_hand_computed():
    # 2x4 grid; box covers rows [0, 0.5) fully and x in [0.125, 0.5):
    # half of column 0, all of column 1.
    overlap = captioning.box_overlap_matrix((0.0, 0.125, 0.5, 0.5), (2, 4))
    np.testing.assert_allclose(
        overlap, [[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    # A box on a cell's corner quarter.
    overlap = captioning.box_overlap_matrix((0.25, 0.25, 1.0, 1.0), (2, 2))
    np.testing.assert_allclose(overlap, [[0.25, 0.5], [0.5, 1.0]])


def test_attention_in_boxes_hand_computed():
    grid = (2, 2)
    attention = np.array(
        [
            [0.7, 0.1, 0.2, 0.0],  # word 0: mostly top-left
            [0.0, 0.5, 0.0, 0.5],  # word 1: right column
            [0.25, 0.25, 0.25, 0.25],  # [END]: not scored
        ]
    )
    boxes = np.array(
        [
            [0.0, 0.0, 0.5, 0.5],  # top-left cell exactly
            [0.0, 0.75, 1.0, 1.0],  # right half of the right column
        ]
    )
    masses = captioning.attention_in_boxes(attention, boxes, 2, grid)
    np.testing.assert_allclose(masses, [0.7, 0.5 * 0.5 + 0.5 * 0.5])
    # Fewer generated words than boxes: only those are scored.
    assert captioning.attention_in_boxes(attention, boxes, 1, grid) == [0.7]
    # Uniform attention gets the box's area.
    uniform = np.full((1, 4), 0.25)
    np.testing.assert_allclose(
        captioning.attention_in_boxes(uniform, boxes[1:], 1, grid), [0.25]
    )


# === COCO pipeline (TFDS mock data) ===


def test_coco_pipeline_on_tfds_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    # mock_data fakes the examples, not the prepared state on disk.
    monkeypatch.setattr(
        captioning.data_lib,
        "load_builder",
        lambda name, *args, **kwargs: tfds.builder(name),
    )
    config = runner.resolve("coco_captions", ["data.image_size=[24,32]"])
    task = captioning.TASK
    task.validate(config)
    with tfds.testing.mock_data(num_examples=5):
        data = task.load_data(config, None, None)
        (inputs, target_out) = next(iter(data.train))
        images, references, boxes = next(iter(data.test))
    assert data.info["image_shape"] == [24, 32, 3]
    # Every caption of an image is a training example.
    assert data.info["num_train_examples"] > data.info["num_train_images"]
    assert inputs["images"].shape[1:] == (24, 32, 3)
    assert inputs["images"].dtype == tf.uint8
    np.testing.assert_array_equal(inputs["target_in"][:, 0], 2)  # [START]
    assert target_out.shape == inputs["target_in"].shape
    assert inputs["target_in"].shape[1] <= config.data.max_caption_length - 1
    assert images.shape[1:] == (24, 32, 3)
    assert references.shape[1] > 1 and boxes.shape[1] == 0


# === Export, served in a fresh process ===

_SERVE = textwrap.dedent(
    """
    import json, sys
    sys.path = [p for p in sys.path if p not in ("", {root!r})]
    import numpy as np
    import tensorflow as tf
    data = np.load({data!r})
    loaded = tf.saved_model.load({path!r})
    out = {{}}
    for signature in ("serving_default", "greedy"):
        fn = loaded.signatures[signature]
        res = {{}}
        # Bad inputs through the default signature only (same code).
        names = ["right"]
        if signature == "serving_default":
            names += ["larger", "rgb", "empty", "two_channels"]
        for name in names:
            try:
                r = fn(images=tf.constant(data[name]))
            except tf.errors.InvalidArgumentError as err:
                res[name] = err.message
                continue
            res[name] = {{
                "keys": sorted(r),
                "caption": [c.decode() for c in r["caption"].numpy()],
                "attention": list(r["attention"].shape),
                "resized": r["resized"].numpy().tolist(),
            }}
        out[signature] = res
    leaked = sorted(m for m in sys.modules
                    if m.split(".")[0] in {packages!r})
    assert not leaked, f"project modules imported: {{leaked}}"
    print(json.dumps(out))
    """
)


def test_saved_model_serves_captions_in_a_fresh_process(tmp_path):
    import zoo

    vocabulary = list(RESERVED_TOKENS) + ["zero", "one", "two", "three"]
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
    path = str(tmp_path / "export")
    captioning.export_captioner(
        model, vocabulary, path, max_caption_length=5, beam_width=2
    )
    rng = np.random.default_rng(0)
    right = rng.integers(0, 256, (3, 16, 16, 1), "uint8")
    data = {
        "right": right,
        "larger": rng.integers(0, 256, (2, 20, 24, 1), "uint8"),
        "rgb": np.repeat(right[:2], 3, axis=-1),
        "empty": np.zeros((0, 16, 16, 1), "uint8"),
        "two_channels": np.zeros((1, 16, 16, 2), "uint8"),
    }
    np.savez(tmp_path / "data.npz", **data)
    script = _SERVE.format(
        root=ROOT,
        data=str(tmp_path / "data.npz"),
        path=path,
        packages=("layers", "zoo", "experiments", "benchmarks", "tests"),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])

    words = np.asarray(vocabulary)
    for signature, method in (
        ("serving_default", "beam"),
        ("greedy", "greedy"),
    ):
        res = served[signature]
        result = model.generate(
            right, method=method, max_length=5, beam_width=2
        )
        tokens = result.best().tokens.numpy()
        expected = [
            " ".join(words[[t for t in row if t > 3]]) for row in tokens
        ]
        assert res["right"]["caption"] == expected, signature
        if method == "beam":
            expected_beam = expected
        assert res["right"]["attention"] == [3, 5, 4, 4]
        assert res["right"]["resized"] == [False] * 3
        assert {"caption", "words", "attention", "score", "resized"} <= set(
            res["right"]["keys"]
        )
    res = served["serving_default"]
    assert len(res["larger"]["caption"]) == 2
    assert res["larger"]["resized"] == [True, True]
    # RGB copies of grey images are converted back: same captions.
    assert res["rgb"]["caption"] == expected_beam[:2]
    assert res["empty"]["caption"] == []
    assert res["empty"]["attention"][0] == 0
    assert "1 or 3 channels" in res["two_channels"]


# === CLI ===


def test_captioning_experiments_are_listed(capsys):
    code, out, _ = _cli(capsys, "list", "*")
    assert code == 0
    for name in (
        "digit_scenes_soft",
        "digit_scenes_hard",
        "coco_captions",
        "coco_captions_hard",
    ):
        assert name in out


def test_unknown_names_exit_2_with_close_matches(capsys):
    code, _, err = _cli(capsys, "run", "digit_scenes_sotf")
    assert code == 2 and "digit_scenes_soft" in err
    code, _, err = _cli(
        capsys,
        "run",
        "digit_scenes_soft",
        "--set",
        "model.name=show_attend_tell_hrad",
    )
    assert code == 2 and "show_attend_tell_hard" in err
    code, _, err = _cli(
        capsys, "run", "digit_scenes_soft", "--set", "model.name=resnet20"
    )
    assert code == 2 and "not a image_captioning model" in err
    code, _, err = _cli(
        capsys, "run", "digit_scenes_soft", "--set", "data.caption_kye=x"
    )
    assert code == 2 and "data.caption_key" in err
    code, _, err = _cli(
        capsys, "run", "digit_scenes_soft", "--set", "eval.export_search=x"
    )
    assert code == 2 and "export_search" in err


def test_missing_feature_key_names_the_features(capsys, tmp_path):
    code, _, err = _cli(
        capsys,
        "run",
        "digit_scenes_soft",
        "--data-dir",
        str(tmp_path),
        "--set",
        "data.name=digit_scenes/tiny",
        "data.caption_key=captions/text",
    )
    assert code == 2
    assert "no feature 'captions/text'" in err and "bboxes, caption" in err


def test_missing_coco_gives_one_clear_message(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_ZOO_OFFLINE", "1")
    code, _, err = _cli(
        capsys, "run", "coco_captions", "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert "is not prepared" in err and "tfds build coco_captions" in err


# === Runs (slow) ===


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
    config = runner.resolve(
        "digit_scenes_soft",
        [
            "data.name=digit_scenes/tiny",
            "data.max_eval_examples=20",
            "model.units=16",
            "model.encoder_filters=[8,8,8]",
            "eval.attention_maps=2",
            "eval.samples=3",
            "train.run_eagerly=true",
        ],
        epochs=1,
    )
    metrics = runner.run(
        config,
        name="tiny",
        out=str(tmp_path / "run"),
        data_dir=str(tmp_path / "tfds"),
        verbose=0,
    )
    for key in ("exact_greedy", "exact_beam", "bleu4_greedy", "bleu1_beam"):
        assert np.isfinite(metrics[key]), key
    assert 0.0 <= metrics["attention_in_box_greedy"] <= 1.0
    assert metrics["num_test_examples"] == 20
    run = tmp_path / "run"
    assert len(json.load(open(run / "samples.json"))) == 3
    assert os.path.getsize(run / "plots" / "caption_attention_0.png") > 0
    assert (run / "saved_model" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_digit_scenes_soft_reaches_the_targets(tmp_path):
    """The digit-scenes targets of docs/captioning.md: >= 90% exact
    captions and >= 0.5 of the attention mass inside the named digit's box
    (minutes on CPU)."""
    config = runner.resolve("digit_scenes_soft")
    metrics = runner.run(
        config, name="digit_scenes_soft", out=str(tmp_path / "run"), verbose=0
    )
    assert metrics["exact_greedy"] >= 0.90
    assert metrics["attention_in_box_greedy"] >= 0.5
