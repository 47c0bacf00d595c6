"""Registry-driven tests of every image captioner in the zoo, and the
Show, Attend and Tell decoder's training losses.

Each registered captioner, at a tiny size: build, forward pass without
NaN, one training step, `.keras` round trip with equal outputs, decoding
after reload; the step-by-step decoder (`encode` + `decode_step`, which
greedy and beam search use) gives the teacher-forced logits. The doubly
stochastic regulariser and the REINFORCE term are checked against NumPy
computations of their formulas.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.testing import run_docstring_example
from zoo.captioning import ShowAttendTellDecoder
from zoo.captioning.show_attend_tell_decoder import target_out_from_target_in

pytestmark = pytest.mark.tf_only

CAPTIONERS = zoo.list_models(task="image_captioning")
TINY = dict(
    vocab_size=14,
    input_shape=(16, 16, 1),
    encoder_filters=(4, 8),
    convs_per_stage=1,
    embedding_dim=8,
    units=8,
    attention_units=8,
    dropout=0.0,
    seed=1,
)
IMAGES = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1), "uint8")
TARGET_IN = np.array([[2, 5, 6, 7], [2, 8, 9, 0]], "int32")
TARGET_OUT = np.array([[5, 6, 7, 3], [8, 9, 3, 0]], "int32")


def _inputs():
    return {"images": IMAGES, "target_in": TARGET_IN}


def _build(name, **kwargs):
    return zoo.build(name, **{**TINY, **kwargs})


def test_registry_lists_the_captioners():
    assert set(CAPTIONERS) >= {"show_attend_tell_soft", "show_attend_tell_hard"}
    for name in CAPTIONERS:
        info = zoo.get_model_info(name)
        assert info.task == "image_captioning"
        assert "images" in info.inputs and "Show, Attend and Tell" in info.paper


@pytest.mark.parametrize("name", CAPTIONERS)
def test_full_battery(name, tmp_path):
    model = _build(name)
    logits = np.asarray(model(_inputs()))
    assert logits.shape == (2, 4, 14)
    assert np.all(np.isfinite(logits))
    assert model.feature_grid == (4, 4)

    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
        run_eagerly=True,
    )
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(_inputs(), TARGET_OUT)
    assert np.isfinite(loss)
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))

    expected = np.asarray(model(_inputs(), training=False))
    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    np.testing.assert_allclose(
        np.asarray(reloaded(_inputs(), training=False)), expected, atol=1e-5
    )
    result = reloaded.generate(IMAGES, method="beam", max_length=5)
    assert result.tokens.shape == (2, 4, 5)
    assert result.attention.shape == (2, 4, 5, 16)
    greedy = reloaded.generate(IMAGES, method="greedy", max_length=5)
    beam = reloaded.generate(IMAGES, method="beam", max_length=5, beam_width=1)
    np.testing.assert_array_equal(beam.tokens.numpy()[:, 0], greedy.tokens)
    assert greedy.attention.shape == (2, 5, 16)
    with pytest.raises(ValueError, match="method"):
        reloaded.generate(IMAGES, method="sampling")


@pytest.mark.parametrize("name", CAPTIONERS)
def test_step_decoder_reproduces_teacher_forcing(name):
    model = _build(name)
    expected = np.asarray(model(_inputs(), training=False))
    state, context = model.encode(tf.constant(IMAGES))
    for t in range(TARGET_IN.shape[1]):
        logits, state, attention = model.decode_step(
            tf.constant(TARGET_IN[:, t]), state, context, tf.constant(t)
        )
        real = TARGET_IN[:, t] != 0
        np.testing.assert_allclose(
            np.asarray(logits)[real], expected[real, t], atol=1e-5
        )
        weights = np.asarray(attention)
        assert weights.shape == (2, 16)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        if name.endswith("hard"):  # inference: one location
            assert np.all(np.isin(weights, (0.0, 1.0)))


def test_target_out_from_target_in():
    got = target_out_from_target_in(tf.constant(TARGET_IN), 0, 3)
    np.testing.assert_array_equal(np.asarray(got), TARGET_OUT)


def _teacher_forced_attention(model):
    """`[B, T, L]` soft attention of each step, from the step decoder (the
    encoder in training mode, as in the training call: batch statistics)."""
    decoder = model.decoder
    annotations = model._annotations(tf.constant(IMAGES), training=True)
    state = decoder.initial_state(annotations)
    context = decoder.decoding_context(annotations)
    alphas = []
    for t in range(TARGET_IN.shape[1]):
        embedded = decoder.embedding(tf.constant(TARGET_IN[:, t]))
        h, c, _, alpha, _, _ = decoder.step(embedded, state, context)
        state = [h, c]
        alphas.append(np.asarray(alpha, "float64"))
    return np.stack(alphas, 1)


def test_doubly_stochastic_regularizer_matches_the_formula():
    model = _build("show_attend_tell_soft", attention_regularizer=0.3)
    alpha = _teacher_forced_attention(model)
    mask = (TARGET_IN != 0).astype("float64")
    coverage = (alpha * mask[..., None]).sum(1)  # [B, L]
    expected = 0.3 * np.mean(((1.0 - coverage) ** 2).sum(-1))
    model(_inputs(), training=True)
    (penalty,) = model.losses
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)
    model(_inputs(), training=False)
    assert not model.losses
    off = _build("show_attend_tell_soft", attention_regularizer=0.0)
    off(_inputs(), training=True)
    assert not off.losses


def test_reinforce_term_matches_the_formula():
    decoder = ShowAttendTellDecoder(
        6,
        embedding_dim=4,
        units=4,
        attention_units=4,
        attention="hard",
        reinforce_weight=0.5,
        entropy_weight=0.1,
        baseline_decay=0.8,
    )
    decoder.build((3, 5, 2))
    rng = np.random.default_rng(3)
    target_in = np.array([[2, 4, 5], [2, 5, 0], [2, 0, 0]], "int32")
    target_out = np.array([[4, 5, 3], [5, 3, 0], [3, 0, 0]])
    mask = (target_in != 0).astype("float32")
    logits = rng.normal(size=(3, 3, 6)).astype("float32")
    log_prob = -rng.random((3, 3)).astype("float32")
    entropy = rng.random((3, 3)).astype("float32")
    expected_ctx = np.array([False, False, True])

    def numpy_term(average, steps):
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        picked = np.take_along_axis(log_p, target_out[..., None], -1)[..., 0]
        reward = (picked * mask).sum(1)
        average = 0.8 * average + 0.2 * reward.mean()
        baseline = average / (1 - 0.8**steps)
        advantage = (reward - baseline) * (1 - expected_ctx)
        term = -0.5 * np.mean(advantage * (log_prob * mask).sum(1))
        return term - 0.1 * np.mean((entropy * mask).sum(1)), average

    average = 0.0
    for steps in (1, 2):
        decoder._losses.clear()
        decoder._add_reinforce_loss(
            tf.constant(logits),
            tf.constant(target_in),
            tf.constant(mask),
            tf.constant(log_prob),
            tf.constant(entropy),
            tf.constant(expected_ctx),
        )
        expected, average = numpy_term(average, steps)
        (term,) = decoder.losses
        np.testing.assert_allclose(float(term), expected, rtol=1e-5)
        np.testing.assert_allclose(float(decoder.reward_average), average)
        assert float(decoder.reward_steps) == steps
    # At the first step the bias-corrected baseline is the batch's mean
    # reward, so the advantages of the sampled captions are centred.


def test_hard_attention_scorer_learns_only_through_reinforce():
    # The sampled selection passes no gradient: without the REINFORCE
    # and entropy terms (and no expected contexts) the scorer is frozen.
    model = _build(
        "show_attend_tell_hard", expectation_probability=0.0, entropy_weight=0.0
    )
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0
    )
    scorer = model.decoder.attention_layer.trainable_weights
    norms = []
    for weight in (0.0, 1.0):
        model.decoder.reinforce_weight = weight
        with tf.GradientTape() as tape:
            logits = model(_inputs(), training=True)
            loss = loss_fn(TARGET_OUT, logits) + sum(model.losses)
        grads = tape.gradient(loss, scorer)
        norms.append(sum(float(tf.norm(g)) for g in grads if g is not None))
    assert norms[0] == 0.0 and norms[1] > 0.0


def test_docstring_examples_run():
    run_docstring_example(zoo.captioning.ShowAttendTell)
    run_docstring_example(ShowAttendTellDecoder)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="attention"):
        ShowAttendTellDecoder(10, attention="glimpse")
    with pytest.raises(ValueError, match="units"):
        ShowAttendTellDecoder(10, units=0)
    with pytest.raises(ValueError, match="expectation_probability"):
        ShowAttendTellDecoder(10, expectation_probability=1.5)
    with pytest.raises(ValueError, match="attention_regularizer"):
        ShowAttendTellDecoder(10, attention_regularizer=-1.0)
    with pytest.raises(ValueError, match="shrink"):
        _build("show_attend_tell_soft", encoder_filters=(4, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        _build("show_attend_tell_soft", input_shape=(16, 16))
    with pytest.raises(ValueError, match="encoder_filters"):
        _build("show_attend_tell_soft", encoder_filters=())
    with pytest.raises(KeyError, match="show_attend_tell_soft"):
        zoo.build("show_attend_tell_sotf")
