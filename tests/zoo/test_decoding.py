"""Tests of greedy and beam search on hand-built step functions.

The step functions are Markov chains over a tiny vocabulary (the next-token
distribution depends on the previous token, and optionally on the example
through `context`), so the best sequence can be found by enumeration.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import run_docstring_example
from zoo import decoding

pytestmark = pytest.mark.tf_only

END, PAD = 0, 0
START = 4

# Token 4 is the start token. From it, "1" (0.5) beats "2" (0.4); after
# "1" every continuation is unlikely, after "2" the end token is certain:
# greedy takes 1 then 0 with p = 0.5 * 0.35 = 0.175, beam search finds
# 2 0 with p = 0.4 * 0.9 = 0.36.
TABLE = np.array(
    [
        [1.00, 0.00, 0.00, 0.00, 0.00],  # after end (unused)
        [0.35, 0.30, 0.05, 0.30, 0.00],  # after 1
        [0.90, 0.05, 0.05, 0.00, 0.00],  # after 2
        [0.50, 0.10, 0.10, 0.30, 0.00],  # after 3
        [0.05, 0.50, 0.40, 0.05, 0.00],  # after start
    ],
    "float32",
)
LOG_TABLE = np.log(np.maximum(TABLE, 1e-12)).astype("float32")


def markov_step(tokens, state, context, step):
    logits = tf.gather(LOG_TABLE, tokens)
    if context is not None:
        # Per-example tables: context["table"] [N, V, V].
        logits = tf.gather(context["table"], tokens, batch_dims=1)
    # A fake attention over 3 source positions that marks the step.
    attention = tf.one_hot(tf.fill(tf.shape(tokens), step % 3), 3)
    # The state counts steps; its reordering is checked below.
    return logits, {"count": state["count"] + 1}, attention


def _state(batch):
    return {"count": tf.zeros([batch, 1])}


def _sequence_log_prob(table, sequence, start=START):
    total, previous = 0.0, start
    for token in sequence:
        total += np.log(max(float(table[previous, token]), 1e-12))
        previous = token
        if token == END:
            break
    return total


def _best_by_enumeration(table, max_length, alpha):
    """Best sequence ending in END (or of max_length) by GNMT score."""
    best, best_score = None, -np.inf
    for length in range(1, max_length + 1):
        for body in itertools.product(range(1, 4), repeat=length - 1):
            for last in (END, *range(1, 4)):
                if last != END and length < max_length:
                    continue
                sequence = (*body, last)
                lp = ((5.0 + length) / 6.0) ** alpha
                score = _sequence_log_prob(table, sequence) / lp
                if score > best_score:
                    best, best_score = sequence, score
    return best, best_score


def test_docstring_examples_run():
    run_docstring_example(decoding.greedy_search)
    run_docstring_example(decoding.beam_search)


def test_greedy_takes_the_locally_best_token():
    result = decoding.greedy_search(
        markov_step, _state(1), tf.constant([START]), END, max_length=6
    )
    assert result.tokens.numpy().tolist() == [[1, 0, 0, 0, 0, 0]]
    assert result.lengths.numpy().tolist() == [2]
    np.testing.assert_allclose(
        result.log_probs.numpy(), [np.log(0.5) + np.log(0.35)], rtol=1e-5
    )
    # Attention of produced tokens, zero after the end.
    attention = result.attention.numpy()[0]
    np.testing.assert_allclose(attention[:2], np.eye(3)[:2])
    assert np.all(attention[2:] == 0.0)


def test_beam_finds_the_sequence_greedy_misses():
    result = decoding.beam_search(
        markov_step,
        _state(1),
        tf.constant([START]),
        END,
        max_length=6,
        beam_width=2,
    )
    assert result.tokens.numpy()[0, 0].tolist() == [2, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(
        result.log_probs.numpy()[0, 0], np.log(0.4) + np.log(0.9), rtol=1e-5
    )
    # Beams are sorted best first.
    scores = result.scores.numpy()[0]
    assert scores[0] >= scores[1]


def test_best_picks_beam_zero_and_keeps_greedy_results():
    greedy = decoding.greedy_search(
        markov_step, _state(2), tf.constant([START, START]), END, 6
    )
    assert greedy.best() is greedy
    beam = decoding.beam_search(
        markov_step,
        _state(2),
        tf.constant([START, START]),
        END,
        max_length=6,
        beam_width=3,
    )
    best = beam.best()
    assert isinstance(best, decoding.DecodeResult)
    for field, value in zip(beam._fields, best):
        expected = getattr(beam, field).numpy()[:, 0]
        np.testing.assert_array_equal(value.numpy(), expected)
    assert best.tokens.shape == greedy.tokens.shape
    assert best.attention.shape == greedy.attention.shape


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_search_matches_exhaustive_search(alpha):
    # 64 beams keep every real hypothesis (<= 40) until the last step.
    result = decoding.beam_search(
        markov_step,
        _state(1),
        tf.constant([START]),
        END,
        max_length=4,
        beam_width=64,
        length_penalty=alpha,
    )
    best, best_score = _best_by_enumeration(TABLE, 4, alpha)
    length = result.lengths.numpy()[0, 0]
    assert tuple(result.tokens.numpy()[0, 0, :length]) == best
    np.testing.assert_allclose(
        result.scores.numpy()[0, 0], best_score, rtol=1e-5
    )


def test_length_penalty_favours_longer_outputs():
    # After start: "3" (0.45) or end (0.55); after 3: end (0.6) -> a short
    # sentence wins without length penalty, the longer one with a strong one.
    table = np.array(
        [
            [1.0, 0, 0, 0, 0],
            [1.0, 0, 0, 0, 0],
            [1.0, 0, 0, 0, 0],
            [0.6, 0.0, 0.0, 0.4, 0],
            [0.55, 0.0, 0.0, 0.45, 0],
        ],
        "float32",
    )
    log_table = np.log(np.maximum(table, 1e-12)).astype("float32")

    def step(tokens, state, context, step):
        return tf.gather(log_table, tokens), state, None

    def best(alpha):
        result = decoding.beam_search(
            step,
            (),
            tf.constant([START]),
            END,
            max_length=5,
            beam_width=3,
            length_penalty=alpha,
        )
        assert result.attention is None
        return result.lengths.numpy()[0, 0]

    assert best(0.0) == 1  # "END": log 0.55 > log(0.45 * 0.6)
    assert best(5.0) > 1
    np.testing.assert_allclose(
        decoding.gnmt_length_penalty(tf.constant([1, 4]), 0.6).numpy(),
        [1.0, (9 / 6) ** 0.6],
        rtol=1e-6,
    )


def test_beam_width_one_equals_greedy():
    rng = np.random.default_rng(0)
    tables = rng.dirichlet(np.ones(5) * 0.5, size=(3, 5)).astype("float32")
    context = {"table": tf.math.log(tables + 1e-9)}
    start = tf.constant([START] * 3)
    greedy = decoding.greedy_search(
        markov_step, _state(3), start, END, max_length=7, context=context
    )
    beam = decoding.beam_search(
        markov_step,
        _state(3),
        start,
        END,
        max_length=7,
        beam_width=1,
        context=context,
    )
    np.testing.assert_array_equal(beam.tokens.numpy()[:, 0], greedy.tokens)
    np.testing.assert_allclose(
        beam.log_probs.numpy()[:, 0], greedy.log_probs, rtol=1e-5
    )
    np.testing.assert_allclose(beam.attention.numpy()[:, 0], greedy.attention)


def test_finished_beams_stay_finished():
    result = decoding.beam_search(
        markov_step,
        _state(1),
        tf.constant([START]),
        END,
        max_length=8,
        beam_width=4,
    )
    tokens = result.tokens.numpy()[0]
    lengths = result.lengths.numpy()[0]
    for beam, length in zip(tokens, lengths):
        if END in beam[:length].tolist():
            # The end token is last, then only padding.
            assert beam[length - 1] == END
            assert np.all(beam[length:] == PAD)
        # Log-probability of the kept tokens = the reported one.
    for beam, length, log_p in zip(
        tokens, lengths, result.log_probs.numpy()[0]
    ):
        np.testing.assert_allclose(
            _sequence_log_prob(TABLE, beam[:length].tolist()), log_p, rtol=1e-5
        )


def test_examples_of_a_batch_are_independent():
    rng = np.random.default_rng(1)
    tables = rng.dirichlet(np.ones(5) * 0.3, size=(4, 5)).astype("float32")
    log_tables = np.log(tables + 1e-9).astype("float32")
    start = tf.constant([START] * 4)
    batched = decoding.beam_search(
        markov_step,
        _state(4),
        start,
        END,
        max_length=6,
        beam_width=3,
        length_penalty=0.6,
        context={"table": tf.constant(log_tables)},
    )
    for i in range(4):
        alone = decoding.beam_search(
            markov_step,
            _state(1),
            start[i : i + 1],
            END,
            max_length=6,
            beam_width=3,
            length_penalty=0.6,
            context={"table": tf.constant(log_tables[i : i + 1])},
        )
        np.testing.assert_array_equal(
            batched.tokens.numpy()[i], alone.tokens.numpy()[0]
        )
        np.testing.assert_allclose(
            batched.scores.numpy()[i], alone.scores.numpy()[0], rtol=1e-5
        )


def test_state_is_reordered_with_the_beams():
    # The state records the beam's own tokens; a step reads it back.
    def step(tokens, state, context, step):
        history = tf.concat([state["history"][:, 1:], tokens[:, None]], 1)
        logits = tf.gather(LOG_TABLE, tokens)
        return logits, {"history": history}, None

    result = decoding.beam_search(
        step,
        {"history": tf.zeros([1, 6], tf.int32)},
        tf.constant([START]),
        END,
        max_length=5,
        beam_width=3,
    )
    # Reaching here with consistent shapes is part of the check; the
    # result must equal the stateless search.
    reference = decoding.beam_search(
        markov_step,
        _state(1),
        tf.constant([START]),
        END,
        max_length=5,
        beam_width=3,
    )
    np.testing.assert_array_equal(result.tokens, reference.tokens)


def test_xla_compiled_search_equals_eager():
    start = tf.constant([START, START])

    def search(start_tokens):
        return decoding.beam_search(
            markov_step,
            _state(2),
            start_tokens,
            END,
            max_length=6,
            beam_width=3,
            length_penalty=0.6,
        )

    eager = search(start)
    # (Plain tf.function decoding is covered by the translator tests.)
    compiled = decoding.compile_search(search, jit_compile=True)(start)
    np.testing.assert_array_equal(compiled.tokens, eager.tokens)
    np.testing.assert_allclose(compiled.scores, eager.scores, rtol=1e-5)


def test_max_length_stops_unfinished_sequences():
    def never_ends(tokens, state, context, step):
        return (
            tf.gather(tf.math.log([[0.0, 0, 0, 1.0, 0]] * 5), tokens),
            (),
            None,
        )

    greedy = decoding.greedy_search(
        never_ends, (), tf.constant([START]), END, max_length=3
    )
    assert greedy.tokens.numpy().tolist() == [[3, 3, 3]]
    assert greedy.lengths.numpy().tolist() == [3]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="beam_width"):
        decoding.beam_search(markov_step, (), tf.constant([4]), 0, 3, 0)
    with pytest.raises(ValueError, match="length_penalty"):
        decoding.beam_search(
            markov_step, (), tf.constant([4]), 0, 3, 2, length_penalty=-1.0
        )
    with pytest.raises(ValueError, match="start_tokens"):
        decoding.greedy_search(markov_step, (), tf.constant(4), 0, 3)
    with pytest.raises(ValueError, match="max_length"):
        decoding.greedy_search(markov_step, (), tf.constant([4]), 0, 0)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_compiled_search_of_a_single_example(search):
    # A batch of one traces to a static batch size of 1 before the loop;
    # the loop must still accept it (a single sentence translated in a
    # `tf.function` without an input signature).
    def run(start_tokens):
        kwargs = {"beam_width": 3} if search == "beam" else {}
        fn = getattr(decoding, f"{search}_search")
        return fn(markov_step, _state(1), start_tokens, END, 6, **kwargs)

    start = tf.constant([START])
    eager = run(start)
    compiled = tf.function(run)(start)
    np.testing.assert_array_equal(compiled.tokens, eager.tokens)
    np.testing.assert_array_equal(compiled.attention, eager.attention)
