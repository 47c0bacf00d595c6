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
from zoo.captioning.show_attend_tell_objective import HardAttentionObjective

pytestmark = pytest.mark.tf_only

CAPTIONERS = zoo.list_models(task="image_captioning")
TINY = dict(
    vocab_size=14,
    input_shape=(16, 16, 1),
    encoder_filters=(4, 8),
    convs_per_stage=1,
    seed=1,
    embedding_dim=8,
    units=8,
    attention_units=8,
    dropout=0.0,
)
# The Transformer decoder's sizes instead of the LSTM decoder's.
TINY_TRANSFORMER = dict(
    vocab_size=14,
    input_shape=(16, 16, 1),
    encoder_filters=(4, 8),
    convs_per_stage=1,
    num_layers=1,
    model_dim=8,
    num_heads=2,
    ff_dim=16,
    dropout=0.0,
)
IMAGES = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1), "uint8")
TARGET_IN = np.array([[2, 5, 6, 7], [2, 8, 9, 0]], "int32")
TARGET_OUT = np.array([[5, 6, 7, 3], [8, 9, 3, 0]], "int32")


def _inputs():
    return {"images": IMAGES, "target_in": TARGET_IN}


def _build(name, **kwargs):
    tiny = TINY_TRANSFORMER if name.startswith("transformer") else TINY
    return zoo.build(name, **{**tiny, **kwargs})


def test_registry_lists_the_captioners():
    assert set(CAPTIONERS) >= {
        "show_attend_tell_soft",
        "show_attend_tell_hard",
        "transformer_captioner",
    }
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
    state, context = model.encode(tf.constant(IMAGES), TARGET_IN.shape[1])
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


def _objective_inputs():
    rng = np.random.default_rng(3)
    target_in = np.array([[2, 4, 5], [2, 5, 0], [2, 0, 0]], "int32")
    mask = (target_in != 0).astype("float32")
    return dict(
        token_rewards=-rng.random((3, 3)).astype("float32") * 3,
        mask=mask,
        log_probs=-rng.random((3, 3)).astype("float32"),
        entropy=rng.random((3, 3)).astype("float32"),
        sampled=np.array([1.0, 1.0, 0.0], "float32"),
        previous_h=rng.normal(size=(3, 3, 4)).astype("float32"),
    )


def test_paper_reinforce_term_matches_the_formula():
    objective = HardAttentionObjective(
        baseline="moving_average",
        reinforce_weight=0.5,
        entropy_weight=0.1,
        baseline_decay=0.8,
    )
    objective.build(4)
    x = _objective_inputs()
    mask = x["mask"]
    reward = (x["token_rewards"] * mask).sum(1)
    average = 0.0
    for steps in (1, 2):
        term = objective.loss(**x, progress=1.0)
        average = 0.8 * average + 0.2 * reward.mean()
        baseline = average / (1 - 0.8**steps)
        advantage = (reward - baseline) * x["sampled"]
        expected = -0.5 * np.mean(advantage * (x["log_probs"] * mask).sum(1))
        expected -= 0.1 * np.mean((x["entropy"] * mask).sum(1))
        np.testing.assert_allclose(float(term), expected, rtol=1e-5)
    # At the first step the bias-corrected baseline is the batch's mean
    # reward, so the advantages of the sampled captions are centred.


def test_learned_baseline_term_matches_the_formula():
    objective = HardAttentionObjective(
        reinforce_weight=0.5, entropy_weight=0.1, baseline_decay=0.8
    )
    objective.build(4)
    kernel = np.linspace(-1, 1, 4).reshape(4, 1).astype("float32")
    objective.baseline_dense.set_weights([kernel, np.array([0.3], "float32")])
    x = _objective_inputs()
    mask, sampled = x["mask"], x["sampled"]
    rewards = x["token_rewards"] * mask
    to_go = rewards[:, ::-1].cumsum(1)[:, ::-1]
    np.testing.assert_allclose(
        to_go[0],
        [rewards[0].sum(), *rewards[0, 1:].sum(keepdims=True), rewards[0, 2]],
        rtol=1e-6,
    )
    moments = np.zeros(2)
    for steps in (1, 2):
        term = objective.loss(**x, progress=1.0)
        batch = [
            (to_go * mask).sum() / mask.sum(),
            (to_go**2 * mask).sum() / mask.sum(),
        ]
        moments = 0.8 * moments + 0.2 * np.array(batch)
        mean, square = moments / (1 - 0.8**steps)
        normalised = (to_go - mean) / np.sqrt(square - mean**2 + 1e-6)
        predicted = (x["previous_h"] @ kernel)[..., 0] + 0.3
        weights = mask * sampled[:, None]
        reinforce = (
            -((normalised - predicted) * x["log_probs"] * weights).sum()
            / mask.sum()
        )
        regression = ((predicted - normalised) ** 2 * mask).sum() / mask.sum()
        bonus = -0.1 * (x["entropy"] * mask).sum() / mask.sum()
        expected = 0.5 * reinforce + regression + bonus
        np.testing.assert_allclose(float(term), expected, rtol=1e-5)


def test_leave_one_out_term_matches_the_formula():
    objective = HardAttentionObjective(
        baseline="leave_one_out", samples=3, entropy_weight=0.1
    )
    objective.build(4)
    rng = np.random.default_rng(4)
    # 2 images x 3 samples each, in a row.
    mask = np.repeat(np.array([[1, 1, 1], [1, 1, 0]], "float32"), 3, axis=0)
    x = dict(
        token_rewards=-rng.random((6, 3)).astype("float32") * 3,
        mask=mask,
        log_probs=-rng.random((6, 3)).astype("float32"),
        entropy=rng.random((6, 3)).astype("float32"),
        sampled=np.array([1, 1, 1, 0, 0, 0], "float32"),
        previous_h=np.zeros((6, 3, 4), "float32"),
    )
    term = objective.loss(**x, progress=1.0)
    rewards = x["token_rewards"] * mask
    to_go = rewards[:, ::-1].cumsum(1)[:, ::-1]
    mean = (to_go * mask).sum() / mask.sum()
    variance = (to_go**2 * mask).sum() / mask.sum() - mean**2
    normalised = ((to_go - mean) / np.sqrt(variance + 1e-6)).reshape(2, 3, 3)
    others = (normalised.sum(1, keepdims=True) - normalised) / 2
    advantage = (normalised - others).reshape(6, 3)
    weights = mask * x["sampled"][:, None]
    expected = -(advantage * x["log_probs"] * weights).sum() / mask.sum()
    expected -= 0.1 * (x["entropy"] * mask).sum() / mask.sum()
    np.testing.assert_allclose(float(term), expected, rtol=1e-5)


def test_several_samples_per_image_train_the_attention():
    model = _build(
        "show_attend_tell_hard",
        baseline="leave_one_out",
        samples=3,
        expectation_probability=0.0,
    )
    logits = model(_inputs(), training=True)
    assert tuple(logits.shape) == (2, 4, 14)  # the first sample's
    scorer = model.decoder.attention_layer.trainable_weights
    with tf.GradientTape() as tape:
        model(_inputs(), training=True)
        loss = sum(model.losses)
    grads = tape.gradient(loss, scorer)
    assert all(float(tf.norm(g)) > 0 for g in grads)


def test_curriculum_anneals_from_soft_to_hard():
    objective = HardAttentionObjective(
        entropy_weight=0.2, expectation_probability=0.4, anneal_steps=4
    )
    objective.build(4)
    seen = []
    for _ in range(6):
        progress = objective.advance()
        seen.append(
            (
                float(objective.expected_context_probability(progress)),
                float(objective.current_entropy_weight(progress)),
            )
        )
    np.testing.assert_allclose(
        seen,
        [
            (0.85, 0.15),
            (0.7, 0.1),
            (0.55, 0.05),
            (0.4, 0.0),
            (0.4, 0.0),
            (0.4, 0.0),
        ],
        atol=1e-6,
    )
    fixed = HardAttentionObjective(entropy_weight=0.2)
    fixed.build(4)
    progress = fixed.advance()
    assert float(fixed.expected_context_probability(progress)) == 0.5
    np.testing.assert_allclose(
        float(fixed.current_entropy_weight(progress)), 0.2
    )


def test_curriculum_starts_with_the_expected_context():
    # At the start of a curriculum every image trains on the expected
    # context: the training call equals the soft-attention computation
    # (a deterministic output for the same weights).
    model = _build("show_attend_tell_hard", anneal_steps=1000)
    first = np.asarray(model(_inputs(), training=True))
    second = np.asarray(model(_inputs(), training=True))
    np.testing.assert_allclose(first, second, atol=1e-5)
    sampled = _build("show_attend_tell_hard", expectation_probability=0.0)
    outs = [np.asarray(sampled(_inputs(), training=True)) for _ in range(4)]
    assert any(not np.allclose(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("estimator", ["reinforce", "gumbel"])
def test_hard_attention_scorer_gradients(estimator):
    # With the sampled selection only (no expected contexts), the
    # REINFORCE scorer learns only through the REINFORCE term (the
    # selection passes no gradient), the Gumbel scorer from the caption's
    # likelihood itself (straight-through gradient).
    model = _build(
        "show_attend_tell_hard",
        estimator=estimator,
        expectation_probability=0.0,
        entropy_weight=0.0,
    )
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0
    )
    scorer = model.decoder.attention_layer.trainable_weights
    norms = []
    for with_objective in (False, True):
        with tf.GradientTape() as tape:
            logits = model(_inputs(), training=True)
            loss = loss_fn(TARGET_OUT, logits)
            if with_objective:
                loss += sum(model.losses)
        grads = tape.gradient(loss, scorer)
        norms.append(sum(float(tf.norm(g)) for g in grads if g is not None))
    if estimator == "reinforce":
        assert norms[0] == 0.0 and norms[1] > 0.0
    else:
        assert norms[0] > 0.0 and np.isfinite(norms[0])


@pytest.mark.parametrize("stop", [False, True])
def test_stop_key_gradient_cuts_only_the_score_path(stop):
    decoder = ShowAttendTellDecoder(
        6,
        embedding_dim=4,
        units=4,
        attention_units=4,
        attention="hard",
        stop_key_gradient=stop,
    )
    rng = np.random.default_rng(0)
    annotations = tf.Variable(rng.random((2, 5, 3)).astype("float32"))
    decoder.build(annotations.shape)
    state = [tf.ones((2, 4)) * 0.5, tf.zeros((2, 4))]
    embedded = tf.ones((2, 4))
    with tf.GradientTape() as tape:
        context = decoder.decoding_context(annotations)
        _, _, _, _, log_prob, _ = decoder.step(
            embedded, state, context, training=True
        )
    grad = tape.gradient(log_prob, annotations)
    # The selection's log-probability depends on the annotations only
    # through the keys of the scores.
    if stop:
        assert grad is None or float(tf.norm(grad)) == 0.0
    else:
        assert float(tf.norm(grad)) > 0.0


def test_gumbel_captioner_round_trips(tmp_path):
    model = _build("show_attend_tell_hard", estimator="gumbel", temperature=0.5)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
    )
    assert np.isfinite(model.train_on_batch(_inputs(), TARGET_OUT))
    path = os.path.join(tmp_path, "gumbel.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.decoder.estimator == "gumbel"
    assert reloaded.decoder.attention_layer.mode == "gumbel"
    assert reloaded.decoder.objective.anneal_steps == 0
    np.testing.assert_allclose(
        np.asarray(reloaded(_inputs(), training=False)),
        np.asarray(model(_inputs(), training=False)),
        atol=1e-5,
    )
    np.testing.assert_array_equal(
        np.asarray(reloaded.decoder.objective.train_steps),
        np.asarray(model.decoder.objective.train_steps),
    )


def test_docstring_examples_run():
    run_docstring_example(zoo.captioning.ShowAttendTell)
    run_docstring_example(ShowAttendTellDecoder)
    run_docstring_example(HardAttentionObjective)
    run_docstring_example(zoo.captioning.TransformerCaptioner)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="attention"):
        ShowAttendTellDecoder(10, attention="glimpse")
    with pytest.raises(ValueError, match="units"):
        ShowAttendTellDecoder(10, units=0)
    with pytest.raises(ValueError, match="expectation_probability"):
        ShowAttendTellDecoder(10, expectation_probability=1.5)
    with pytest.raises(ValueError, match="estimator='straight'"):
        ShowAttendTellDecoder(10, estimator="straight")
    with pytest.raises(ValueError, match="baseline='critic'"):
        ShowAttendTellDecoder(10, baseline="critic")
    with pytest.raises(ValueError, match="anneal_steps=-1"):
        ShowAttendTellDecoder(10, anneal_steps=-1)
    with pytest.raises(ValueError, match="samples=1"):
        ShowAttendTellDecoder(10, baseline="leave_one_out")
    with pytest.raises(ValueError, match="samples=4"):
        ShowAttendTellDecoder(10, samples=4)
    with pytest.raises(ValueError, match="attention_regularizer"):
        ShowAttendTellDecoder(10, attention_regularizer=-1.0)
    with pytest.raises(ValueError, match="shrink"):
        _build("show_attend_tell_soft", encoder_filters=(4, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        _build("show_attend_tell_soft", input_shape=(16, 16))
    with pytest.raises(ValueError, match="encoder_filters"):
        _build("show_attend_tell_soft", encoder_filters=())
    with pytest.raises(ValueError, match="num_heads=3"):
        _build("transformer_captioner", num_heads=3)
    with pytest.raises(ValueError, match="convs_per_stage=0"):
        _build("transformer_captioner", convs_per_stage=0)
    with pytest.raises(KeyError, match="show_attend_tell_soft"):
        zoo.build("show_attend_tell_sotf")
