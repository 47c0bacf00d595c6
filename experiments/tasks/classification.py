"""The classification task tier: what image and text classification share.

A `ClassificationTask` trains a zoo classifier on one-hot labels of a TFDS
`ClassLabel` feature. It owns the label names (`data.info["label_names"]`,
`data.info["num_classes"]`), the model's output-count check, the
cross-entropy loss and accuracy metric, and the test scores: accuracy,
macro-F1, test loss, scikit-learn's classification report and the
confusion matrix (files `classification_report.txt`,
`confusion_matrix.json`, `plots/confusion_matrix.png`). Exported models of
both tasks return the same `label` / `label_names` serving outputs
(`label_outputs`). A subclass supplies its data, its model defaults, its
predictions and its attention pictures.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from experiments import baselines
from experiments import plots
from experiments.errors import UserError
from experiments.rundir import write_json
from experiments.rundir import write_text
from experiments.tasks.base import Task


def label_names(builder, label_key):
    """The class names of the `ClassLabel` feature `label_key`."""
    feature = builder.info.features[label_key]
    names = getattr(feature, "names", None)
    if not names:
        raise UserError(
            f"Feature {label_key!r} of {builder.info.full_name!r} is not "
            "a ClassLabel. Set data.label_key to its class-label feature."
        )
    return [str(n) for n in names]


def label_outputs(probabilities, names):
    """The serving outputs naming the predicted class.

    Args:
        probabilities: float `[B, num_classes]`.
        names: string tensor `[num_classes]` of the class names.

    Returns:
        `{"label": [B] name of the most probable class, "label_names":
        [B, num_classes] the class names}` (the same for every row, so that
        every output has the batch dimension TF Serving expects).
    """
    batch = tf.shape(probabilities)[0]
    return {
        "label": tf.gather(names, tf.argmax(probabilities, -1)),
        "label_names": tf.tile(names[None], [batch, 1]),
    }


class ClassificationTask(Task):
    """Base of the image and text classification tasks."""

    primary_metric = "test_accuracy"

    # --- Model ----------------------------------------------------------
    def build_model(self, config, data):
        model = super().build_model(config, data)
        self.check_built_model(model, data)
        if model.output_shape[-1] != data.info["num_classes"]:
            raise UserError(
                f"Model has {model.output_shape[-1]} outputs but the dataset "
                f"has {data.info['num_classes']} classes."
            )
        return model

    def check_built_model(self, model, data):
        """The subclass's checks of a built model against the data."""

    def loss(self, config):
        return keras.losses.CategoricalCrossentropy(
            label_smoothing=float(config.train.label_smoothing)
        )

    def metrics(self, config, data):
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]

    # --- Evaluation -----------------------------------------------------
    def score(self, labels, probabilities, data, config, run_dir):
        """The test scores of the predicted `probabilities` `[N, C]`;
        writes the report and confusion-matrix files into `run_dir`.

        Returns:
            `(results, predicted)`: the metrics dict (`test_accuracy`,
            `test_macro_f1`, `test_loss`, `num_test_examples`,
            `classification_report`) and the predicted classes `[N]`.
        """
        names = data.info["label_names"]
        predicted = probabilities.argmax(-1)
        scores = baselines.classification_scores(labels, predicted, names)
        picked = probabilities[np.arange(len(labels)), labels]
        results = {
            "test_accuracy": scores["accuracy"],
            "test_macro_f1": scores["macro_f1"],
            "test_loss": float(np.mean(-np.log(np.maximum(picked, 1e-12)))),
            "num_test_examples": int(len(labels)),
            "classification_report": scores["report"],
        }
        write_text(
            os.path.join(run_dir, "classification_report.txt"),
            scores["report_text"],
        )
        write_json(
            os.path.join(run_dir, "confusion_matrix.json"),
            {
                "rows": "true class",
                "columns": "predicted class",
                "split": str(config.data.test_split),
                "labels": list(names),
                "matrix": scores["confusion_matrix"],
            },
        )
        if config.eval.plots:
            folder = os.path.join(run_dir, "plots")
            os.makedirs(folder, exist_ok=True)
            plots.confusion_matrix(
                np.asarray(scores["confusion_matrix"]),
                names,
                os.path.join(folder, "confusion_matrix.png"),
                title=f"{config.model.name} on {data.info['dataset']}",
            )
        return results, predicted
