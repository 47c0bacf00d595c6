"""Registry-driven tests of every text classification model in the zoo,
plus the text-specific layers and helpers of `zoo.text`.

Each registered text model is tested the moment it is registered: build,
forward pass on raw strings (empty, whitespace-only, very long, non-ASCII
and invalid-UTF-8 texts included) without NaN, one training step, `.keras`
round trip with equal outputs, and its word weights. String inputs need
TensorFlow, so the whole module is TensorFlow-only.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.testing import run_layer_test
from zoo.text import FoldSentences
from zoo.text import LearnedQuery
from zoo.text import MaskedGlobalPooling1D
from zoo.text import SentenceSplit
from zoo.text import SinusoidalPositionEncoding
from zoo.text import UnfoldSentences
from zoo.text import build_vocabulary
from zoo.text import standardize_text
from zoo.text import tokenize
from zoo.text import word_attention

pytestmark = pytest.mark.tf_only

TEXT_MODELS = zoo.list_models(task="text_classification")
VOCABULARY = ["good", "bad", "movie", "plot", "!", "not", "café"]
TEXTS = np.array(
    [
        "A good movie! Bad plot.",
        "",
        "   ",
        "Good movie. " * 3000,
        "Ünïcödé CAFÉ ?? 映画はとても良い",
        b"\xff\xfe bad \xc3",  # invalid UTF-8
    ],
    dtype=object,
)
CLASSES = 3


def _small(name, **extra):
    kwargs = {"vocabulary": VOCABULARY, "num_classes": CLASSES}
    if name == "han":
        kwargs.update(
            max_sentences=3,
            sentence_length=6,
            embedding_dim=8,
            word_units=4,
            sentence_units=4,
            attention_units=8,
        )
    elif name == "transformer_classifier":
        kwargs.update(
            sequence_length=10,
            embedding_dim=8,
            num_heads=2,
            ff_dim=8,
            num_layers=1,
        )
    else:
        kwargs.update(sequence_length=10, embedding_dim=8, rnn_units=4)
    kwargs.update(extra)
    return kwargs


def test_registry_lists_the_text_models():
    assert set(TEXT_MODELS) == {
        "bigru_attention",
        "bigru_luong",
        "bigru_hard_attention",
        "bigru_maxpool",
        "han",
        "transformer_classifier",
    }


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_metadata(name):
    info = zoo.get_model_info(name)
    assert info.task == "text_classification"
    assert "string" in info.inputs
    assert info.paper


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_full_battery(name, tmp_path):
    model = zoo.build(name, **_small(name))
    assert model.input.dtype == "string"
    inputs = tf.constant(TEXTS)
    probs = np.asarray(model(inputs))
    assert probs.shape == (len(TEXTS), CLASSES)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)

    # One training step on raw strings: finite loss, weights move (eager:
    # no tracing cost; the compiled path runs in the experiment tests).
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="categorical_crossentropy",
        run_eagerly=True,
    )
    targets = np.eye(CLASSES, dtype="float32")[np.arange(len(TEXTS)) % 3]
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(inputs, targets)
    assert np.isfinite(loss)
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))

    # .keras round trip (safe mode) with equal outputs in inference mode.
    expected = np.asarray(model(inputs, training=False))
    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.asarray(reloaded(inputs, training=False)), expected, atol=1e-5
    )

    # Word weights: exactly the tokens the model read, weights on them.
    attended = word_attention(reloaded, TEXTS)
    assert len(attended) == len(TEXTS)
    first = attended[0]
    assert first.tokens == ["a", "good", "movie", "!", "bad", "plot"]
    assert first.weights.shape == (6,)
    assert np.all(np.isfinite(first.weights)) and first.weights.min() >= 0
    np.testing.assert_allclose(first.probabilities, expected[0], atol=1e-5)
    if name != "bigru_maxpool":
        # A distribution over the words (max-pool shares sum to one too).
        np.testing.assert_allclose(first.weights.sum(), 1.0, atol=1e-4)
    assert attended[1].tokens == [] and attended[2].tokens == []
    assert len(attended[3].tokens) == (6 if name == "han" else 10)
    assert attended[4].tokens[:2] == ["ünïcödé", "café"]
    if name == "han":
        assert first.sentence_ids == [0, 0, 0, 0, 1, 1]

    if name != "transformer_classifier":  # its learned positions: below
        _check_padding_is_ignored(name, model)


def _check_padding_is_ignored(name, model, **extra):
    # Same weights, a longer padded length: equal outputs, so padding never
    # leaks into the prediction (the masks are honoured).
    length_key = "sentence_length" if name == "han" else "sequence_length"
    longer = zoo.build(name, **_small(name, **extra, **{length_key: 14}))
    longer.set_weights(model.get_weights())
    texts = tf.constant(["good movie", "bad plot !", "not good. bad"])
    np.testing.assert_allclose(
        np.asarray(longer(texts)), np.asarray(model(texts)), atol=1e-5
    )


def test_hard_attention_selects_one_word():
    model = zoo.build("bigru_hard_attention", **_small("bigru_hard_attention"))
    weights = word_attention(model, ["good movie bad plot"])[0].weights
    assert sorted(weights.tolist()) == [0.0, 0.0, 0.0, 1.0]
    model = zoo.build(
        "bigru_hard_attention", **_small("bigru_hard_attention", k=2)
    )
    weights = word_attention(model, ["good movie bad plot"])[0].weights
    assert sorted(weights.tolist()) == [0.0, 0.0, 0.5, 0.5]


@pytest.mark.parametrize(
    "name, extra",
    [
        ("bigru_attention", {"num_heads": 2}),
        ("bigru_luong", {"score": "dot"}),
        ("bigru_luong", {"score": "concat"}),
        ("transformer_classifier", {"pooling": "attention"}),
        ("transformer_classifier", {"positions": "sinusoidal"}),
    ],
)
def test_variants(name, extra):
    model = zoo.build(name, **_small(name, **extra))
    probs = np.asarray(model(tf.constant(TEXTS)))
    assert np.all(np.isfinite(probs))
    weights = word_attention(model, ["good movie"])[0].weights
    np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-4)
    if extra.get("positions") == "sinusoidal":
        _check_padding_is_ignored(name, model, **extra)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("bigru_attention", {"pooling": "mean"}, "`pooling` must be one of"),
        ("bigru_luong", {"score": "location"}, "`score` must be one of"),
        ("bigru_attention", {"rnn_units": 0}, "`rnn_units` expected"),
        ("bigru_attention", {"dropout": 1.0}, "`dropout` expected"),
        ("bigru_attention", {"num_classes": 1}, "`num_classes` expected"),
        ("bigru_attention", {"sequence_length": 0}, "`sequence_length`"),
        ("bigru_attention", {"vocabulary": []}, "`vocabulary` is empty"),
        ("bigru_attention", {"vocabulary": ["a", "a"]}, "duplicate"),
        ("han", {"max_sentences": 0}, "`max_sentences` expected"),
        (
            "transformer_classifier",
            {"embedding_dim": 10, "num_heads": 4},
            "divisible by `num_heads`",
        ),
        (
            "transformer_classifier",
            {"positions": "rotary"},
            "`positions` must be one of",
        ),
    ],
)
def test_argument_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.build(name, **{**_small(name), **kwargs})


def test_unadapted_model_can_be_adapted_later():
    model = zoo.build(
        "bigru_attention",
        max_tokens=50,
        sequence_length=6,
        embedding_dim=8,
        rnn_units=4,
    )
    model.get_layer("vectorizer").adapt(["good movie", "bad plot"])
    probs = np.asarray(model(tf.constant(["good plot", ""])))
    assert probs.shape == (2, 2) and np.all(np.isfinite(probs))


# --- Text pre-processing -----------------------------------------------


def test_standardize_text():
    out = standardize_text(
        tf.constant(
            [
                "Don't STOP!<br />It's GREAT, really...",
                "ÉLAN Ürün",
                b"bad\xffbyte",
            ]
        )
    ).numpy()
    assert out[0].split() == [
        b"dont",
        b"stop",
        b"!",
        b"its",
        b"great",
        b"really",
    ]
    assert out[1].decode().split() == ["élan", "ürün"]
    assert out[2].decode().split() == ["bad", "byte"]


def test_tokenize_matches_the_vectorizer():
    texts = ["A good movie!", "Ünïcödé café", ""]
    model = zoo.build("bigru_attention", **_small("bigru_attention"))
    vocabulary = model.get_layer("vectorizer").get_vocabulary()
    ids = np.asarray(model.get_layer("vectorizer")(tf.constant(texts)))
    for tokens, row in zip(tokenize(texts), ids):
        expected = [
            vocabulary.index(t) if t in vocabulary else 1 for t in tokens
        ]
        assert row[: len(tokens)].tolist() == expected
        assert not row[len(tokens) :].any()


def test_build_vocabulary_is_frequency_ordered_and_deterministic():
    texts = ["b a", "a c b", "a", b"d", "  "]
    assert build_vocabulary(texts) == ["a", "b", "c", "d"]
    assert build_vocabulary(texts, min_count=2) == ["a", "b"]
    assert build_vocabulary(texts, max_tokens=4) == ["a", "b"]
    with pytest.raises(ValueError, match="max_tokens"):
        build_vocabulary(texts, max_tokens=2)


def test_sentence_split():
    split = SentenceSplit(max_sentences=3)
    out = split(
        tf.constant(
            [
                'He said "Great." Then left!  And?',
                "One<br /><br />Two\nThree. Four.",
                "",
                "no end mark",
            ]
        )
    ).numpy()
    assert out.tolist() == [
        [b'He said "Great."', b"Then left!", b"And?"],
        [b"One", b"Two", b"Three."],
        [b"", b"", b""],
        [b"no end mark", b"", b""],
    ]
    config = split.get_config()
    assert SentenceSplit.from_config(config).max_sentences == 3
    with pytest.raises(ValueError, match="max_sentences"):
        SentenceSplit(max_sentences=0)
    with pytest.raises(ValueError, match="expects strings"):
        split(tf.constant([1.0]))


# --- Layers of zoo.text --------------------------------------------------


def test_learned_query():
    layer = run_layer_test(
        LearnedQuery,
        {"units": 4},
        np.zeros((3, 5, 2), "float32"),
        expected_output_shape=(3, 4),
        expected_num_trainable_weights=1,
        run_training_step=True,
    )
    out = np.asarray(layer(np.zeros((2, 7, 1), "float32")))
    np.testing.assert_allclose(out[0], out[1])
    np.testing.assert_allclose(out[0], np.asarray(layer.query)[0])
    with pytest.raises(ValueError, match="units"):
        LearnedQuery(0)


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_masked_global_pooling(mode):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype("float32") - 10.0
    mask = np.array(
        [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=bool
    )
    run_layer_test(
        MaskedGlobalPooling1D,
        {"mode": mode},
        x,
        tensor_kwargs={"mask": mask},
        expected_output_shape=(3, 4),
        expected_num_trainable_weights=0,
        run_training_step=False,
    )
    layer = MaskedGlobalPooling1D(mode)
    pooled, weights = layer(x, mask=mask, return_attention_scores=True)
    pooled, weights = np.asarray(pooled), np.asarray(weights)
    reduce = np.max if mode == "max" else np.mean
    np.testing.assert_allclose(pooled[0], reduce(x[0, :2], axis=0), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], reduce(x[1], axis=0), rtol=1e-6)
    # A fully masked sequence (an empty text) pools to zeros, not -inf/NaN.
    np.testing.assert_array_equal(pooled[2], 0.0)
    np.testing.assert_allclose(weights.sum(-1), [1.0, 1.0, 0.0], atol=1e-6)
    assert not weights[0, 2:].any()
    if mode == "max":
        winners = x[1].argmax(0)
        expected = np.bincount(winners, minlength=5) / 4
        np.testing.assert_allclose(weights[1], expected, atol=1e-6)
    with pytest.raises(ValueError, match="`mode` must be one of"):
        MaskedGlobalPooling1D("sum")


def test_sinusoidal_position_encoding():
    x = np.random.default_rng(0).normal(size=(2, 6, 8)).astype("float32")
    run_layer_test(
        SinusoidalPositionEncoding,
        {},
        x,
        expected_output_shape=(2, 6, 8),
        expected_num_trainable_weights=0,
        run_training_step=False,
    )
    got = np.asarray(SinusoidalPositionEncoding()(x)) - x
    t = np.arange(6)[:, None]
    i = np.arange(4)[None]
    angle = t / np.power(10000.0, 2 * i / 8)
    expected = np.zeros((6, 8))
    expected[:, 0::2], expected[:, 1::2] = np.sin(angle), np.cos(angle)
    np.testing.assert_allclose(got[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionEncoding()(np.zeros((1, 2, 3), "float32"))
    with pytest.raises(ValueError, match="base"):
        SinusoidalPositionEncoding(base=1)


def test_fold_and_unfold_sentences():
    x = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    run_layer_test(
        FoldSentences,
        {},
        x,
        expected_output_shape=(6, 4),
        expected_num_trainable_weights=0,
        run_training_step=False,
        run_mixed_precision=False,
        check_compute_output_shape=False,
    )
    run_layer_test(
        UnfoldSentences,
        {"num_sentences": 3},
        x.reshape(6, 4),
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=0,
        run_training_step=False,
        run_mixed_precision=False,
        check_compute_output_shape=False,
    )
    folded = FoldSentences()(x)
    np.testing.assert_array_equal(UnfoldSentences(3)(folded), x)
    strings = FoldSentences()(tf.constant([["a", "b"], ["c", ""]]))
    assert strings.numpy().tolist() == [b"a", b"b", b"c", b""]
    with pytest.raises(ValueError, match="num_sentences"):
        UnfoldSentences(0)
