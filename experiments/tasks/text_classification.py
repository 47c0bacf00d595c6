"""Text classification task: TFDS texts -> zoo model -> report -> SavedModel.

Data: any TFDS dataset with a text feature and a `ClassLabel` (official
`imdb_reviews`, `ag_news_subset`, `yelp_polarity_reviews`, ...; the offline
`movie_sentences` builder; or a prepared dataset directory), with the
feature keys set by `data.text_key` / `data.label_key`. Empty or
whitespace-only training texts are dropped and counted (logged and in
metrics.json). The vocabulary is built on the training split and becomes
the model's `TextVectorization` layer, so the model — and its export —
takes raw strings.

Pipeline: decode -> drop empty texts -> cache -> shuffle -> batch ->
prefetch. Evaluation: accuracy, macro-F1, scikit-learn's classification
report, a confusion matrix, word-attention pictures (PNG and HTML) of
sample test texts, and the same-run TF-IDF + logistic regression baseline
on the same split. Export: `tf.string` texts in -> probabilities, label and
label names, plus the tokens and their attention weights.
"""

import os

import numpy as np
import tensorflow as tf

from experiments import baselines
from experiments import data as data_lib
from experiments import export as export_lib
from experiments import plots
from experiments.configs.text_classification import ABLATION_MODELS
from experiments.errors import UserError
from experiments.rundir import write_text
from experiments.tasks.base import TaskData
from experiments.tasks.base import check_split_size
from experiments.tasks.base import pick_examples
from experiments.tasks.classification import ClassificationTask
from experiments.tasks.classification import label_names
from experiments.tasks.classification import label_outputs
from zoo.text import attention_function
from zoo.text import build_vocabulary
from zoo.text import word_attention

AUTOTUNE = tf.data.AUTOTUNE
ARCHIVE_DATASETS = ("movie_sentences",)


def _say(message):
    print(message, flush=True)


def text_keys(cfg):
    """The feature keys joined into the text (`"title,description"`)."""
    return [k.strip() for k in cfg.text_key.split(",") if k.strip()]


# Python's `str.isspace` characters as an RE2 class (RE2's `\s` is ASCII
# only): the training pipeline and `is_blank` must agree on every text.
BLANK_PATTERN = r"[\s\p{Z}\x0b\x1c-\x1f\x{85}]*"


def is_blank(text):
    """Whether a text (bytes or str) is empty or only Unicode whitespace."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return not text.strip()


def _read(dataset):
    """`(list of bytes texts, int64 labels)` of a `(text, label)` dataset."""
    texts, labels = [], []
    for batch_texts, batch_labels in dataset.batch(4096).as_numpy_iterator():
        texts.extend(batch_texts.tolist())
        labels.extend(batch_labels.tolist())
    return texts, np.asarray(labels, dtype="int64")


class TextClassificationTask(ClassificationTask):
    """Trains and evaluates zoo text classifiers on TFDS texts."""

    name = "text_classification"
    secondary_metrics = ("test_macro_f1",)

    def check_settings(self, config):
        cfg = config.data
        if not text_keys(cfg):
            raise UserError("data.text_key is empty: name the text feature.")
        if cfg.vocabulary_size < 3:
            raise UserError(
                "data.vocabulary_size must be >= 3. Received: "
                f"data.vocabulary_size={cfg.vocabulary_size}"
            )
        if cfg.min_token_count < 1:
            raise UserError(
                "data.min_token_count must be >= 1. Received: "
                f"data.min_token_count={cfg.min_token_count}"
            )
        if cfg.archive_path and cfg.name not in ARCHIVE_DATASETS:
            raise UserError(
                "data.archive_path is read by the movie_sentences dataset "
                f"only. Received: data.name={cfg.name!r}"
            )

    def ablation_models(self, config):
        return list(ABLATION_MODELS)

    def ablation_notes(self, results):
        # The baseline sees the same split in every run (it has no seed).
        scores = {
            round(m["baseline_tfidf_logreg"]["test_accuracy"], 6)
            for runs in results.values()
            for m in runs
            if "baseline_tfidf_logreg" in m
        }
        if not scores:
            return []
        return [
            "Same-split reference: TF-IDF (word 1-2 grams) + logistic "
            "regression, test accuracy "
            + ", ".join(f"{s:.4f}" for s in sorted(scores))
            + "."
        ]

    # --- Data -----------------------------------------------------------
    def _examples(self, builder, split, cfg, max_examples):
        """`(dataset of (string text, int32 label), num_examples)`."""
        ds, count = data_lib.open_split(builder, split, max_examples)
        keys, label_key = text_keys(cfg), cfg.label_key

        def decode(example):
            if len(keys) == 1:
                text = example[keys[0]]
            else:
                text = tf.strings.reduce_join(
                    tf.stack([example[k] for k in keys]), separator=". "
                )
            return text, tf.cast(example[label_key], tf.int32)

        return ds.map(decode, num_parallel_calls=AUTOTUNE), count

    def _check_labels(self, labels, split, num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise UserError(
                f"Split {split!r} has labels outside 0..{num_classes - 1} "
                f"(e.g. {int(bad[0])}); unlabelled splits such as "
                "imdb_reviews' 'unsupervised' cannot be used."
            )

    def load_data(self, config, data_dir, strategy):
        cfg = config.data
        builder_kwargs = (
            {"archive_path": os.path.expanduser(cfg.archive_path)}
            if cfg.archive_path
            else None
        )
        builder = data_lib.load_builder(
            cfg.name, data_dir, cfg.download, builder_kwargs=builder_kwargs
        )
        cfg = data_lib.resolve_splits(builder, cfg)
        keys = text_keys(cfg)
        data_lib.check_features(
            builder,
            {
                **{f"data.text_key ({k})": k for k in keys},
                "data.label_key": cfg.label_key,
            },
        )
        names = label_names(builder, cfg.label_key)
        num_classes = len(names)

        # Training texts: read once for the vocabulary and the baseline.
        train, _ = self._examples(
            builder, cfg.train_split, cfg, cfg.max_train_examples
        )
        all_texts, all_labels = _read(train)
        self._check_labels(all_labels, cfg.train_split, num_classes)
        keep = np.asarray([not is_blank(t) for t in all_texts], dtype=bool)
        dropped = int((~keep).sum())
        train_texts = [t for t, k in zip(all_texts, keep) if k]
        train_labels = all_labels[keep]
        if dropped:
            _say(
                f"Dropped {dropped} empty or whitespace-only training "
                f"text(s) of {len(all_texts)} in split {cfg.train_split!r}."
            )
        if not train_texts:
            raise UserError(
                f"The training split {cfg.train_split!r} has no non-empty "
                "texts."
            )
        vocabulary = build_vocabulary(
            train_texts, cfg.vocabulary_size, cfg.min_token_count
        )
        if not vocabulary:
            raise UserError(
                "The training texts hold no token seen at least "
                f"data.min_token_count={cfg.min_token_count} times."
            )

        def one_hot(text, label):
            return text, tf.one_hot(label, num_classes)

        def non_empty(text, _):
            return tf.logical_not(
                tf.strings.regex_full_match(text, BLANK_PATTERN)
            )

        # The count is known (read above): tell tf.data, so Keras knows the
        # epoch length.
        train = train.filter(non_empty).apply(
            tf.data.experimental.assert_cardinality(len(train_texts))
        )
        if cfg.cache:
            train = train.cache()
        # Batches as a pure function of (seed, epoch): exact per-replica
        # sharding under tf.distribute, identical batches after a resume.
        stream = data_lib.TrainStream(
            train,
            len(train_texts),
            cfg.batch_size,
            seed=config.seed,
            shuffle_buffer=cfg.shuffle_buffer,
            prepare=lambda example, _: one_hot(*example),
        )
        stream.check()
        validation, val_texts, val_labels = None, None, None
        if cfg.validation_split:
            ds, _ = self._examples(
                builder, cfg.validation_split, cfg, cfg.max_eval_examples
            )
            val_texts, val_labels = _read(ds)
            self._check_labels(val_labels, cfg.validation_split, num_classes)
            validation = ds.cache() if cfg.cache else ds
            validation = (
                validation.map(one_hot, num_parallel_calls=AUTOTUNE)
                .batch(cfg.eval_batch_size)
                .prefetch(AUTOTUNE)
            )
        test, _ = self._examples(
            builder, cfg.test_split, cfg, cfg.max_eval_examples
        )
        test_texts, test_labels = _read(test)
        check_split_size(len(test_texts), cfg.test_split, "test")
        self._check_labels(test_labels, cfg.test_split, num_classes)
        return TaskData.from_stream(
            stream,
            validation=validation,
            test=test.batch(cfg.eval_batch_size),
            info={
                "dataset": builder.info.full_name,
                "text_key": cfg.text_key,
                "label_key": cfg.label_key,
                "num_classes": num_classes,
                "label_names": names,
                "num_train_examples": len(train_texts),
                **data_lib.split_names(cfg),
                "dropped_empty_train_texts": dropped,
                "num_validation_examples": 0
                if val_texts is None
                else len(val_texts),
                "num_test_examples": len(test_texts),
                "vocabulary_size": len(vocabulary) + 2,
            },
            extras={
                "vocabulary": vocabulary,
                "train": (train_texts, train_labels),
                "validation": None
                if val_texts is None
                else (val_texts, val_labels),
                "test": (test_texts, test_labels),
            },
        )

    # --- Model ----------------------------------------------------------
    def model_defaults(self, config, data):
        return {
            "vocabulary": data.extras["vocabulary"],
            "num_classes": data.info["num_classes"],
        }

    # --- Evaluation -----------------------------------------------------
    def predict(self, model, texts, batch_size):
        """Class probabilities `[N, C]` (float64) of raw `texts`."""
        dataset = tf.data.Dataset.from_tensor_slices(
            tf.constant(texts, tf.string)
        ).batch(batch_size)
        return np.asarray(model.predict(dataset, verbose=0), "float64")

    def evaluate(self, model, data, config, run_dir):
        names = data.info["label_names"]
        texts, labels = data.extras["test"]
        probs = self.predict(model, texts, config.data.eval_batch_size)
        results, predicted = self.score(labels, probs, data, config, run_dir)
        folder = os.path.join(run_dir, "plots")
        os.makedirs(folder, exist_ok=True)
        title = f"{config.model.name} on {data.info['dataset']}"
        count = min(config.eval.attention_maps, len(texts))
        if count:
            chosen = pick_examples(labels, predicted, count)
            results["attention_examples"] = self.write_attention(
                model,
                [texts[i] for i in chosen],
                [
                    f"true {names[labels[i]]}, predicted "
                    f"{names[predicted[i]]} (p={probs[i].max():.2f})"
                    for i in chosen
                ],
                folder,
                title=f"{title}: word attention",
                png=config.eval.plots,
            )
        if getattr(config.eval, "baseline", False):
            results["baseline_tfidf_logreg"] = self.baseline(data, run_dir)
            results["test_accuracy_minus_baseline"] = (
                results["test_accuracy"]
                - results["baseline_tfidf_logreg"]["test_accuracy"]
            )
        return results

    def write_attention(self, model, texts, captions, folder, title, png=True):
        """Word-attention HTML (and PNG) of `texts`; returns their records."""
        attended = word_attention(model, texts)
        return write_attention_files(attended, captions, folder, title, png)

    def baseline(self, data, run_dir):
        """TF-IDF + logistic regression on the same split (report files)."""
        train_texts, train_labels = data.extras["train"]
        test_texts, test_labels = data.extras["test"]
        validation = data.extras.get("validation") or (None, None)
        result = baselines.tfidf_logistic_regression(
            train_texts,
            train_labels,
            test_texts,
            test_labels,
            data.info["label_names"],
            validation_texts=validation[0],
            validation_labels=validation[1],
        )
        write_text(
            os.path.join(run_dir, "baseline_classification_report.txt"),
            f"{result['model']}, C={result['C']}\n\n{result['report_text']}",
        )
        return {
            "model": result["model"],
            "test_accuracy": result["accuracy"],
            "test_macro_f1": result["macro_f1"],
            "C": result["C"],
            "validation_accuracy_per_C": result["validation_accuracy"],
            "num_features": result["num_features"],
            "fit_time_s": result["fit_time_s"],
            "classification_report": result["report"],
            "confusion_matrix": result["confusion_matrix"],
        }

    def summary_line(self, metrics):
        line = (
            f"Test accuracy: {metrics['test_accuracy']:.2%}, macro-F1: "
            f"{metrics['test_macro_f1']:.4f} on "
            f"{metrics['num_test_examples']} test texts"
        )
        baseline = metrics.get("baseline_tfidf_logreg")
        if baseline:
            line += (
                f"; TF-IDF + logistic regression baseline: "
                f"{baseline['test_accuracy']:.2%}"
            )
        return line

    # --- Export ---------------------------------------------------------
    def export(self, model, data, config, path):
        return export_text_classifier(model, data.info["label_names"], path)


def write_attention_files(attended, captions, folder, title, png=True):
    """Writes `word_attention.html` (and `.png`) of `TextAttention`s.

    Returns:
        JSON-ready records (text, tokens, weights, caption).
    """
    examples = [(a.tokens, a.weights) for a in attended]
    write_text(
        os.path.join(folder, "word_attention.html"),
        plots.word_attention_html(examples, captions, title),
    )
    if png:
        plots.word_attention(
            examples,
            os.path.join(folder, "word_attention.png"),
            captions=captions,
            title=title,
        )
    return [
        {
            "text": a.text,
            "caption": caption,
            "tokens": a.tokens,
            "weights": [round(float(w), 5) for w in a.weights],
            **(
                {"sentence_ids": a.sentence_ids}
                if a.sentence_ids is not None
                else {}
            ),
        }
        for a, caption in zip(attended, captions)
    ]


def export_text_classifier(model, label_names, path):
    """Exports a zoo text model: `tf.string [B]` in -> named outputs.

    Signature `serving_default(text)` returns `probabilities` `[B, C]`,
    `label` `[B]`, `label_names` `[B, C]`, `tokens` `[B, T]` and
    `attention_weights` `[B, T]` (`han`: also `sentence_ids`). An empty
    batch returns empty outputs; empty, very long (truncated) and
    non-UTF-8 texts (invalid bytes replaced) are served like any other.
    """
    names = tf.constant(label_names)
    num_classes = len(label_names)
    compute = attention_function(model)
    # The static output structure, for the empty-batch branch.
    probe = compute(tf.constant(["structure probe"]))

    def empty_like(value):
        return tf.zeros([0, *value.shape[1:]], value.dtype)

    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="text")])
    def serve(text):
        text = export_lib.serving_input(
            text, [None], "`text`: a 1-D tf.string batch of texts"
        )

        def run():
            return compute(text)

        def empty():
            return {key: empty_like(value) for key, value in probe.items()}

        # Layers reduce over the batch in places (e.g. max of an empty
        # tensor): an empty request never reaches them.
        outputs = tf.cond(tf.size(text) > 0, run, empty)
        probabilities = tf.ensure_shape(
            outputs["probabilities"], [None, num_classes]
        )
        outputs["probabilities"] = probabilities
        outputs.update(label_outputs(probabilities, names))
        return outputs

    return export_lib.export_saved_model(path, model, serve)


TASK = TextClassificationTask()
