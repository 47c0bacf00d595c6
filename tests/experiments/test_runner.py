"""The runner end to end on digits: run folder, metrics, resume, locking."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from experiments import runner
from experiments.errors import UserError
from tests.experiments.conftest import EAGER
from tests.experiments.conftest import tiny_config


class Interrupted(Exception):
    pass


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Simulates a crash right after epoch `epoch` (1-based) was saved."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.weights = [np.array(w) for w in self.model.get_weights()]
            raise Interrupted()


class RecordStart(keras.callbacks.Callback):
    """Records the weights and first epoch the resumed fit starts from."""

    def __init__(self):
        super().__init__()
        self.weights = None
        self.first_epoch = None

    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch


class RecordSteps(keras.callbacks.Callback):
    """Records the trainable weights after every training step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(w) for w in self.model.trainable_weights])


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, digits_dir):
    out = str(tmp_path_factory.mktemp("runs") / "digits")
    metrics = runner.run(
        tiny_config(epochs=2),
        name="digits_resnet20",
        out=out,
        data_dir=digits_dir,
        verbose=0,
    )
    return out, metrics


def test_run_folder_layout(finished_run):
    out, metrics = finished_run
    for name in (
        "config.json",
        "run.json",
        "metrics.json",
        "history.csv",
        "classification_report.txt",
        "model.keras",
        "plots/training_curves.png",
        "plots/confusion_matrix.png",
        "plots/attention_maps.png",
        "saved_model/1/saved_model.pb",
        "report.html",
        "checkpoints/training_metadata.json",
    ):
        assert os.path.exists(os.path.join(out, name)), name
    assert os.listdir(os.path.join(out, "tensorboard", "train"))
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert config["model"]["kwargs"]["depth"] == 8
    assert config["train"]["epochs"] == 2
    # No temporary leftovers of the atomic writes.
    assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def test_metrics(finished_run):
    out, metrics = finished_run
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["num_test_examples"] == 40
    assert 0.0 <= saved["test_accuracy"] <= saved["test_top5_accuracy"] <= 1.0
    assert saved["classification_report"]["accuracy"] == pytest.approx(
        saved["test_accuracy"]
    )
    assert saved["data"]["input_shape"] == [8, 8, 1]
    assert saved["resumed_from_epoch"] == 0
    assert [int(r["epoch"]) for r in _history(out)] == [1, 2]
    assert metrics["run_dir"] == out


def test_keras_model_reloads(finished_run, digits_dir):
    out, _ = finished_run
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    probs = np.asarray(model(np.zeros((2, 8, 8, 1), "uint8")))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_rerun_of_finished_run_reevaluates_without_training(
    finished_run, digits_dir
):
    out, first = finished_run
    again = runner.run(
        tiny_config(epochs=2),
        name="digits_resnet20",
        out=out,
        data_dir=digits_dir,
        verbose=0,
    )
    assert again["resumed_from_epoch"] == 2
    assert again["epochs_run_by_this_process"] == 0
    assert again["test_accuracy"] == pytest.approx(first["test_accuracy"])
    assert len(_history(out)) == 2


def _trainable(path):
    model = keras.saving.load_model(path)
    return [np.array(w) for w in model.trainable_weights]


def test_weight_average_is_the_model_saved(tmp_path, digits_dir):
    momentum = 0.8
    config = tiny_config(epochs=2, extra=[f"train.ema_momentum={momentum}"])
    out = str(tmp_path / "average")
    steps = RecordSteps()
    runner.run(
        config,
        name="digits_resnet20",
        out=out,
        data_dir=digits_dir,
        verbose=0,
        callbacks=[steps],
    )
    # The exponential moving average of every step's weights, from the
    # first step's.
    average = steps.steps[0]
    for weights in steps.steps[1:]:
        average = [
            momentum * a + (1 - momentum) * w for a, w in zip(average, weights)
        ]
    saved = _trainable(os.path.join(out, "model.keras"))
    assert len(steps.steps) == 4 and len(saved) == len(average)
    for got, want in zip(saved, average):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    last = steps.steps[-1]
    assert not all(np.allclose(s, w) for s, w in zip(saved, last))

    # A rerun of the finished run restores the last checkpoint (raw
    # weights and their average) and ends with the average again.
    runner.run(
        config, name="digits_resnet20", out=out, data_dir=digits_dir, verbose=0
    )
    for got, want in zip(_trainable(os.path.join(out, "model.keras")), saved):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_weight_average_momentum_out_of_range_is_refused(tmp_path):
    config = tiny_config(extra=["train.ema_momentum=1.0"])
    with pytest.raises(UserError, match=r"train.ema_momentum .*Received: 1.0"):
        runner.run(config, out=str(tmp_path / "r"), verbose=0)
    assert not os.path.exists(tmp_path / "r")


def test_different_config_in_existing_folder_is_refused(
    finished_run, digits_dir
):
    out, _ = finished_run
    with pytest.raises(UserError, match="(?s)different config.*train.epochs"):
        runner.run(
            tiny_config(epochs=3),
            name="digits_resnet20",
            out=out,
            data_dir=digits_dir,
            verbose=0,
        )


def test_resume_continues_from_last_checkpoint(tmp_path, digits_dir):
    out = str(tmp_path / "resume")
    config = tiny_config(
        epochs=3, extra=[*EAGER, "export=false", "eval.plots=false"]
    )
    interrupt = InterruptAfterEpoch(2)
    with pytest.raises(Interrupted):
        runner.run(
            config,
            name="digits_resnet20",
            out=out,
            data_dir=digits_dir,
            verbose=0,
            callbacks=[interrupt],
        )
    assert not os.path.exists(os.path.join(out, "metrics.json"))
    first_rows = _history(out)
    assert [int(r["epoch"]) for r in first_rows] == [1, 2]
    # A process killed after writing history row 3 but before saving the
    # epoch-3 checkpoint leaves a row the resumed run must not duplicate.
    with open(os.path.join(out, "history.csv"), "a") as f:
        f.write("3," + ",".join(["0.5"] * (len(first_rows[0]) - 1)) + "\n")

    start = RecordStart()
    metrics = runner.run(
        config,
        name="digits_resnet20",
        out=out,
        data_dir=digits_dir,
        verbose=0,
        callbacks=[start],
    )
    # It continued at epoch 3 from the weights saved after epoch 2.
    assert start.first_epoch == 2
    for saved, restored in zip(interrupt.weights, start.weights):
        np.testing.assert_array_equal(saved, restored)
    assert metrics["resumed_from_epoch"] == 2
    assert metrics["epochs_run_by_this_process"] == 1
    rows = _history(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[:2] == first_rows  # epochs 1-2 were not rerun
    assert rows[2]["accuracy"] != "0.5"
    with open(os.path.join(out, "run.json")) as f:
        starts = json.load(f)["starts"]
    assert [s["resumed_from_epoch"] for s in starts] == [0, 2]


def test_locked_folder_is_refused(tmp_path, digits_dir):
    import fcntl

    out = tmp_path / "busy"
    out.mkdir()
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="Another run is writing"):
            runner.run(
                tiny_config(),
                name="x",
                out=str(out),
                data_dir=digits_dir,
                verbose=0,
            )


def test_default_run_folders_are_unique(tmp_path):
    from experiments.rundir import create_unique

    folders = {create_unique(str(tmp_path), "digits") for _ in range(5)}
    assert len(folders) == 5
    assert all(os.path.isdir(f) for f in folders)


def test_dataset_directory_as_data_name(digits_dir):
    from experiments.tasks import get_task

    path = os.path.join(digits_dir, "digits", "1.0.0")
    config = tiny_config(extra=[f"data.name={path}"])
    data = get_task("image_classification").load_data(config, None, None)
    assert data.info["dataset"] == "digits/1.0.0"
    assert data.info["num_test_examples"] == 40
    images, labels = next(iter(data.train))
    assert tuple(images.shape) == (32, 8, 8, 1) and labels.shape[-1] == 10


_LOAD_AND_CALL = """
import json, sys
import numpy as np
import tensorflow as tf

loaded = tf.saved_model.load(sys.argv[1])
serve = loaded.signatures["serving_default"]
images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1), "uint8")
out = serve(images=tf.constant(images))
other_size = serve(images=tf.zeros([2, 20, 12, 1], tf.uint8))
metadata = loaded.signatures["metadata"]()
project = [m for m in ("layers", "zoo", "experiments", "tests")
           if m in sys.modules]
print(json.dumps({
    "inputs": {k: v.dtype.name for k, v in
               serve.structured_input_signature[1].items()},
    "probabilities": out["probabilities"].numpy().tolist(),
    "label": [s.decode() for s in out["label"].numpy()],
    "label_names": [s.decode() for s in out["label_names"].numpy()[0]],
    "image_size": out["image_size"].numpy().tolist(),
    "resized": out["resized"].numpy().tolist(),
    "other_size_resized": other_size["resized"].numpy().tolist(),
    "other_size_probabilities": other_size["probabilities"].shape.as_list(),
    "metadata_image_size": metadata["image_size"].numpy().tolist(),
    "metadata_label_names": [s.decode() for s in
                             metadata["label_names"].numpy()],
    "project_modules": project,
    "sys_path": sys.path,
}))
"""


def test_export_loads_without_the_project(finished_run, tmp_path):
    import subprocess
    import sys

    out, _ = finished_run
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k != "KERAS_BACKEND"
    }
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        # -I: isolated mode, neither the cwd nor PYTHONPATH on sys.path.
        [sys.executable, "-I", "-c", _LOAD_AND_CALL, f"{out}/saved_model/1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    repo = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    assert report["project_modules"] == []
    assert not any(
        os.path.abspath(p or ".") == repo for p in report["sys_path"]
    )
    assert report["inputs"] == {"images": "uint8"}
    probs = np.asarray(report["probabilities"])
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    names = [str(i) for i in range(10)]
    assert report["label_names"] == names
    assert report["label"] == [names[i] for i in probs.argmax(-1)]
    # The trained image size is declared; other sizes are resized to it.
    assert report["image_size"] == [[8, 8, 1]] * 3
    assert report["resized"] == [False] * 3
    assert report["other_size_resized"] == [True, True]
    assert report["other_size_probabilities"] == [2, 10]
    assert report["metadata_image_size"] == [8, 8, 1]
    assert report["metadata_label_names"] == names


def test_run_outputs_explain_themselves(finished_run):
    out, metrics = finished_run
    with open(os.path.join(out, "confusion_matrix.json")) as f:
        matrix = json.load(f)
    assert matrix["labels"] == [str(i) for i in range(10)]
    assert matrix["rows"] == "true class" and len(matrix["matrix"]) == 10
    assert sum(map(sum, matrix["matrix"])) == metrics["num_test_examples"]
    # digits has no validation split: a held-out slice of train instead.
    assert metrics["data"]["validation_split"].startswith("held-out 10%")
    assert "test_*" in metrics["field_descriptions"]
    with open(os.path.join(out, "report.html")) as f:
        page = f.read()
    assert (
        "held-out 10% of train" in page and "<h2>Confusion matrix</h2>" in page
    )


def test_saved_model_folder_is_a_tf_serving_base_path(finished_run):
    out, _ = finished_run
    # TF Serving's model_base_path holds numbered versions only.
    assert os.listdir(os.path.join(out, "saved_model")) == ["1"]


def test_concurrent_runs_never_share_a_folder(tmp_path):
    import threading

    from experiments.rundir import create_unique

    barrier = threading.Barrier(8)
    folders = []

    def start():
        barrier.wait()  # all at the same instant, the same second
        folders.append(create_unique(str(tmp_path), "digits"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(folders)) == 8


def test_reopened_run_folder_drops_half_written_leftovers(tmp_path):
    from experiments.atomic import temporary_path
    from experiments.rundir import RunDir

    out = tmp_path / "run"
    with RunDir(str(out), tiny_config()):
        pass
    # What a writer killed mid-write leaves: temporary names only.
    half_model = temporary_path(str(out / "model.keras"))
    half_export = temporary_path(str(out / "saved_model" / "1"))
    (out / "checkpoints").mkdir()
    half_checkpoint = temporary_path(
        str(out / "checkpoints" / "epoch-0002.weights.h5")
    )
    for path in (half_model, half_checkpoint):
        with open(path, "w") as f:
            f.write("half")
    os.makedirs(half_export)
    with open(os.path.join(half_export, "saved_model.pb"), "w") as f:
        f.write("x")
    (out / "checkpoints" / "epoch-0001.weights.h5").write_text("kept")
    with RunDir(str(out), tiny_config()):
        pass
    assert sorted(os.listdir(out)) == [
        ".lock",
        "checkpoints",
        "config.json",
        "run.json",
        "saved_model",
    ]
    assert os.listdir(out / "checkpoints") == ["epoch-0001.weights.h5"]
    assert os.listdir(out / "saved_model") == []
