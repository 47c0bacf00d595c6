"""The same-run reference baseline: TF-IDF + logistic regression."""

import numpy as np
import pytest

from experiments import baselines


def _negation_data(count, seed):
    # "not good" is negative and "not bad" positive: no linear model of
    # unigrams separates these (w_not + w_good < 0 < w_good and
    # w_not + w_bad > 0 > w_bad contradict), word bigrams do.
    rng = np.random.default_rng(seed)
    phrases = {"good": 1, "not good": 0, "bad": 0, "not bad": 1}
    fillers = ["the film was", "honestly", "this plot is", "acting"]
    texts, labels = [], []
    for i in range(count):
        phrase = list(phrases)[i % 4]
        text = f"{rng.choice(fillers)} {phrase}"
        texts.append(text.encode() if i % 2 else text)  # bytes and str
        labels.append(phrases[phrase])
    return texts, np.asarray(labels)


def test_bigrams_separate_negations():
    train = _negation_data(80, 0)
    test = _negation_data(40, 1)
    validation = _negation_data(20, 2)
    result = baselines.tfidf_logistic_regression(
        *train,
        *test,
        ["negative", "positive"],
        validation_texts=validation[0],
        validation_labels=validation[1],
    )
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0
    assert result["C"] in baselines.C_GRID
    assert set(result["validation_accuracy"]) == {
        str(c) for c in baselines.C_GRID
    }
    assert result["num_train_examples"] == 80
    assert result["report"]["positive"]["support"] == 20
    assert result["confusion_matrix"] == [[20, 0], [0, 20]]
    assert "negative" in result["report_text"]


def test_without_validation_uses_the_default_c_and_is_deterministic():
    train = _negation_data(40, 0)
    test = _negation_data(20, 1)
    first = baselines.tfidf_logistic_regression(*train, *test, ["n", "p"])
    second = baselines.tfidf_logistic_regression(*train, *test, ["n", "p"])
    assert first["C"] == baselines.DEFAULT_C
    assert first["validation_accuracy"] == {}
    assert first["accuracy"] == second["accuracy"]
    assert first["report"] == second["report"]


def test_classification_scores_handle_missing_classes():
    scores = baselines.classification_scores(
        [0, 0, 1], np.array([0, 0, 0]), ["a", "b", "c"]
    )
    assert scores["accuracy"] == pytest.approx(2 / 3)
    # Macro-F1 over all three classes, absent ones scoring 0.
    assert scores["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)
    assert scores["confusion_matrix"][2] == [0, 0, 0]
