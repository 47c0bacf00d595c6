"""Same-run reference baselines (scikit-learn), scored beside the networks.

`tfidf_logistic_regression`: TF-IDF of word unigrams and bigrams
(sublinear term frequency) with an L2 logistic regression, the classic
strong linear baseline of sentence and document classification (Wang &
Manning 2012, "Baselines and Bigrams"). Its inverse regularisation `C` is
chosen on the validation split when there is one; the model is fitted on
the training split only, exactly the texts the network trains on.
"""

import time

import numpy as np
from sklearn import metrics as skm
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
DEFAULT_C = 10.0


def _decode(texts):
    return [
        t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)
        for t in texts
    ]


def classification_scores(labels, predicted, label_names):
    """Accuracy, macro-F1 and scikit-learn's report (text and dict)."""

    classes = list(range(len(label_names)))
    common = {
        "labels": classes,
        "target_names": list(label_names),
        "zero_division": 0,
    }
    return {
        "accuracy": float(np.mean(np.asarray(labels) == predicted)),
        "macro_f1": float(
            skm.f1_score(
                labels,
                predicted,
                labels=classes,
                average="macro",
                zero_division=0,
            )
        ),
        "report_text": skm.classification_report(
            labels, predicted, digits=4, **common
        ),
        "report": skm.classification_report(
            labels, predicted, output_dict=True, **common
        ),
        "confusion_matrix": skm.confusion_matrix(
            labels, predicted, labels=classes
        ).tolist(),
    }


def tfidf_logistic_regression(
    train_texts,
    train_labels,
    test_texts,
    test_labels,
    label_names,
    validation_texts=None,
    validation_labels=None,
    max_features=500_000,
):
    """Fits and scores TF-IDF (1-2 grams) + logistic regression.

    Args:
        train_texts, train_labels: the training split (str/bytes, ints).
        test_texts, test_labels: the split it is scored on.
        label_names: class names (for the report).
        validation_texts, validation_labels: optional split choosing `C`
            from `C_GRID` (else `C = 10`).
        max_features: cap of the n-gram vocabulary (large corpora).

    Returns:
        Dict: `accuracy`, `macro_f1`, `report_text`, `report`,
        `confusion_matrix`, `C`, `validation_accuracy` (per `C`),
        `num_features`, `fit_time_s`.
    """

    start = time.perf_counter()
    train_texts = _decode(train_texts)
    train_labels = np.asarray(train_labels)
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        sublinear_tf=True,
        min_df=1 if len(train_texts) < 50_000 else 2,
        max_features=max_features,
    )
    features = vectorizer.fit_transform(train_texts)

    def fit(c):
        return LogisticRegression(C=c, max_iter=2000).fit(
            features, train_labels
        )

    chosen, scores = DEFAULT_C, {}
    if validation_texts is not None and len(validation_texts):
        held_out = vectorizer.transform(_decode(validation_texts))
        for c in C_GRID:
            predicted = fit(c).predict(held_out)
            scores[str(c)] = float(
                np.mean(predicted == np.asarray(validation_labels))
            )
        chosen = max(C_GRID, key=lambda c: (scores[str(c)], -c))
    model = fit(chosen)
    predicted = model.predict(vectorizer.transform(_decode(test_texts)))
    result = classification_scores(test_labels, predicted, label_names)
    result.update(
        {
            "model": "TF-IDF (word 1-2 grams, sublinear tf) + logistic "
            "regression",
            "C": chosen,
            "validation_accuracy": scores,
            "num_features": int(features.shape[1]),
            "num_train_examples": len(train_texts),
            "fit_time_s": round(time.perf_counter() - start, 2),
        }
    )
    return result
