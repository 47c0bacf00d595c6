"""Greedy and beam search over any autoregressive step function.

Generic over "a step function + an initial state", so that the RNN and
Transformer translators and the image captioner share one implementation.
Beam search follows tensorflow-addons' `BeamSearchDecoder` (itself after
Wu et al. 2016, "Google's Neural Machine Translation System", §7): `K`
beams per example ranked by `log P(Y | X) / lp(Y)` with the GNMT length
penalty `lp(Y) = ((5 + |Y|) / 6) ** alpha`; a beam that emits the end
token is finished and keeps its score and tokens from then on.

Both searches are graph code (`tf.while_loop` with static-shape buffers),
so they run eagerly step by step as they are, and compiled when called
inside a `tf.function` (`jit_compile=True` for XLA): see `compile_search`.
This module uses TensorFlow directly; `layers/` stays `keras.ops` only.

The step function contract::

    logits, new_state, attention = step_fn(tokens, state, context, step)

- `tokens`: int32 `[N]`, the previous tokens (the start tokens at step 0);
- `state`: a nested structure of batch-first tensors `[N, ...]` that
  changes from step to step (RNN states, self-attention caches). Beam
  search reorders it along the batch axis when beams are re-ranked; its
  shapes must stay the same from step to step;
- `context`: a nested structure of batch-first tensors that does not
  change (encoder outputs, their masks and key projections, image
  features, cross-attention caches), or `None`. Beam search tiles it to
  `N = B * K` once and never reorders it (all beams of an example share
  it);
- `step`: int32 scalar, the index of the token being produced;
- returns `logits` `[N, V]` (any float dtype; log-softmax is applied in
  float32 here), the new state and the attention weights `[N, Tk]` of
  this step, or `None`.

`N` is the batch size `B` for greedy search and `B * beam_width` for beam
search (beam `k` of example `b` is row `b * beam_width + k`).
"""

import typing

import tensorflow as tf

from layers.validation import check_choice

NEG_INF = -1e9


class DecodeResult(typing.NamedTuple):
    """What `greedy_search` and `beam_search` return (a `tf.nest` tuple).

    Greedy search gives tensors with a leading `[B]`; beam search `[B, K]`
    with the beams of each example sorted best first.

    Attributes:
        tokens: int32 `[B, L]` / `[B, K, L]`; the end token is included,
            positions after it hold `pad_token`.
        lengths: int32 `[B]` / `[B, K]`, tokens up to and including the end
            token (`L` when the search stopped at `max_length`).
        scores: float32 `[B]` / `[B, K]`, the ranking score
            `log_probs / lp(lengths)` (greedy: `lp = 1`).
        log_probs: float32 `[B]` / `[B, K]`, the sum of the tokens'
            log-probabilities.
        attention: float32 `[B, L, Tk]` / `[B, K, L, Tk]`, the attention
            weights of every produced token (zero after the end), or `None`
            when the step function returns none.
    """

    tokens: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    log_probs: tf.Tensor
    attention: typing.Any

    def best(self):
        """The best hypothesis of each example: a `DecodeResult` of `[B]`
        leading tensors (a beam search result's beam 0; a greedy result
        as it is)."""
        if self.tokens.shape.rank == 2:
            return self
        return DecodeResult(*(None if x is None else x[:, 0] for x in self))


def gnmt_length_penalty(lengths, alpha):
    """GNMT length penalty `((5 + |Y|) / 6) ** alpha` (Wu et al. 2016, §7).

    `alpha = 0` gives 1 (no normalisation); larger `alpha` favours longer
    outputs.
    """
    lengths = tf.cast(lengths, tf.float32)
    return tf.pow((5.0 + lengths) / 6.0, tf.cast(alpha, tf.float32))


def tile_beams(structure, beam_width):
    """Repeats every batch row `beam_width` times: `[B, ...] -> [B*K, ...]`.

    Row `b` becomes rows `b*K ... b*K + K - 1` (the layout both searches
    use). Use it for tensors a step function captures instead of taking
    them through `context`.
    """

    def tile(x):
        x = tf.convert_to_tensor(x)
        return tf.repeat(x, beam_width, axis=0)

    return tf.nest.map_structure(tile, structure)


def _check_args(start_tokens, end_token, max_length):
    start_tokens = tf.convert_to_tensor(start_tokens)
    if start_tokens.shape.rank != 1:
        raise ValueError(
            "`start_tokens` must be a 1-D int tensor [batch]. Received: "
            f"start_tokens.shape={start_tokens.shape}"
        )
    if isinstance(max_length, int) and max_length <= 0:
        raise ValueError(
            "`max_length` expected a positive integer. Received: "
            f"max_length={max_length}"
        )
    if isinstance(end_token, bool) or not isinstance(end_token, int):
        if not tf.is_tensor(end_token):
            raise ValueError(
                f"`end_token` must be an int. Received: end_token={end_token!r}"
            )
    return tf.cast(start_tokens, tf.int32)


def _log_softmax(logits):
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)


def _write(buffer, position, values, axis=1):
    """`buffer[..., position, ...] = values` at `axis` (XLA-friendly)."""
    length = tf.shape(buffer)[axis]
    hit = tf.equal(tf.range(length), position)
    rank = buffer.shape.rank
    hit = tf.reshape(hit, [1] * axis + [-1] + [1] * (rank - axis - 1))
    return tf.where(hit, tf.expand_dims(values, axis), buffer)


def _shape_invariant(x):
    # Every axis but the batch axis keeps its size. The batch axis is left
    # free: a batch of one traces to a static 1 before the loop, and
    # gathers with `batch_dims` inside it lose that (a single sentence in
    # a `tf.function` without an input signature).
    shape = tf.TensorShape(x.shape)
    if shape.rank:
        return tf.TensorShape([None]).concatenate(shape[1:])
    return shape


def _search_loop(
    step_fn, state, context, tokens, log_probs, lead, pad, max_length, update
):
    """The step loop both searches run.

    The carry is `(tokens, lengths, log_probs, finished, history,
    att_history)` with leading axes `lead` (`[B]` greedy, `[B, K]` beam;
    `tokens` is the flat `[N]` input of the next step; `log_probs` starts
    as given). Step 0 is peeled off the loop: its attention gives the
    shape of the attention buffer.
    `update(carry, logits, attention, step)` returns the new carry and the
    rows the state is reordered by (`None`: kept as it is). The loop stops
    when every row is finished or after `max_length` tokens.

    Returns:
        The final carry, and whether the step function gave attention.
    """

    def advance(carry, state, logits, attention, index):
        carry, rows = update(carry, logits, attention, index)
        if rows is not None:
            state = tf.nest.map_structure(
                lambda x: tf.gather(x, rows, axis=0), state
            )
        return carry, state

    logits, state, attention = step_fn(tokens, state, context, 0)
    att_history = ()
    if attention is not None:
        att_history = tf.zeros(
            lead + [max_length, tf.shape(attention)[-1]], tf.float32
        )
    carry = (
        tokens,
        tf.zeros(lead, tf.int32),
        log_probs,
        tf.zeros(lead, tf.bool),
        tf.fill(lead + [max_length], pad),
        att_history,
    )
    carry, state = advance(carry, state, logits, attention, 0)

    def cond(index, state, carry):
        return (index < max_length) & ~tf.reduce_all(carry[3])

    def body(index, state, carry):
        logits, state, attention = step_fn(carry[0], state, context, index)
        carry, state = advance(carry, state, logits, attention, index)
        return index + 1, state, carry

    _, _, carry = tf.while_loop(
        cond,
        body,
        (tf.constant(1), state, carry),
        shape_invariants=(
            tf.TensorShape([]),
            tf.nest.map_structure(_shape_invariant, state),
            tf.nest.map_structure(_shape_invariant, carry),
        ),
    )
    return carry, attention is not None


def greedy_search(
    step_fn,
    initial_state,
    start_tokens,
    end_token,
    max_length,
    context=None,
    pad_token=0,
):
    """Greedy decoding: the most probable token at every step.

    Args:
        step_fn: the step function (see the module docstring).
        initial_state: nested batch-first tensors `[B, ...]`.
        start_tokens: int `[B]` first input tokens.
        end_token: int id that finishes a sequence.
        max_length: maximum number of produced tokens (int or int tensor).
        context: nested batch-first tensors the step function reads, or
            `None`.
        pad_token: id written after the end token.

    Returns:
        A `DecodeResult` with tensors `[B, ...]`.

    Example:
    ```python
    import tensorflow as tf
    from zoo.decoding import greedy_search

    table = tf.math.log([[0.1, 0.6, 0.3], [0.1, 0.2, 0.7], [0.8, 0.1, 0.1]])

    def step_fn(tokens, state, context, step):
        return tf.gather(table, tokens), state, None

    result = greedy_search(step_fn, (), tf.constant([1]), end_token=0,
                           max_length=5)
    assert result.tokens.numpy().tolist() == [[2, 0, 0, 0, 0]]
    ```
    """
    start_tokens = _check_args(start_tokens, end_token, max_length)
    batch = tf.shape(start_tokens)[0]
    end_token = tf.cast(end_token, tf.int32)
    pad = tf.cast(pad_token, tf.int32)

    def update(carry, logits, attention, step):
        tokens, lengths, log_probs, finished, history, att_history = carry
        log_p = _log_softmax(logits)
        best = tf.argmax(log_p, axis=-1, output_type=tf.int32)
        best_log_p = tf.gather(log_p, best, batch_dims=1)
        token = tf.where(finished, pad, best)
        log_probs = log_probs + tf.where(finished, 0.0, best_log_p)
        lengths = lengths + tf.cast(~finished, tf.int32)
        history = _write(history, step, token)
        if attention is not None:
            attention = tf.where(
                finished[:, None], 0.0, tf.cast(attention, tf.float32)
            )
            att_history = _write(att_history, step, attention)
        finished = finished | tf.equal(token, end_token)
        return (token, lengths, log_probs, finished, history, att_history), None

    carry, with_attention = _search_loop(
        step_fn,
        initial_state,
        context,
        start_tokens,
        tf.zeros([batch], tf.float32),
        [batch],
        pad,
        max_length,
        update,
    )
    _, lengths, log_probs, _, tokens, att_history = carry
    return DecodeResult(
        tokens=tokens,
        lengths=lengths,
        scores=log_probs,
        log_probs=log_probs,
        attention=att_history if with_attention else None,
    )


def beam_search(
    step_fn,
    initial_state,
    start_tokens,
    end_token,
    max_length,
    beam_width=4,
    length_penalty=0.0,
    context=None,
    pad_token=0,
):
    """Beam search with the GNMT length penalty, batched.

    Keeps `beam_width` hypotheses per example. At each step every alive
    beam is extended by every token; finished beams (that emitted
    `end_token`) are extended only by `pad_token` at no cost, so they stay
    finished with their tokens and score. The `beam_width` best candidates
    by `log P / lp(length)` survive (`lp` the GNMT length penalty with
    `alpha = length_penalty`; `0` ranks by log-probability). The search
    stops when every beam is finished or after `max_length` tokens.
    Examples are independent: each one's beams only compete with each
    other. With `beam_width=1` it returns the greedy result.

    Args:
        step_fn: the step function (see the module docstring); it is
            called with `N = B * beam_width` rows.
        initial_state: nested batch-first tensors `[B, ...]` (tiled to the
            beams here).
        start_tokens: int `[B]` first input tokens.
        end_token: int id that finishes a sequence.
        max_length: maximum number of produced tokens (int or int tensor).
        beam_width: positive int `K`.
        length_penalty: GNMT `alpha` (float, `>= 0`).
        context: nested batch-first tensors `[B, ...]` the step function
            reads (tiled to the beams here, never reordered), or `None`.
        pad_token: id written after the end token.

    Returns:
        A `DecodeResult` with tensors `[B, K, ...]`, beams best first.

    Example:
    ```python
    import tensorflow as tf
    from zoo.decoding import beam_search

    table = tf.math.log([[0.1, 0.6, 0.3], [0.1, 0.2, 0.7], [0.8, 0.1, 0.1]])

    def step_fn(tokens, state, context, step):
        return tf.gather(table, tokens), state, None

    result = beam_search(step_fn, (), tf.constant([1]), end_token=0,
                         max_length=5, beam_width=2)
    assert result.tokens.shape == (1, 2, 5)
    ```
    """
    if (
        isinstance(beam_width, bool)
        or not isinstance(beam_width, int)
        or beam_width <= 0
    ):
        raise ValueError(
            "`beam_width` expected a positive integer. Received: "
            f"beam_width={beam_width!r}"
        )
    if isinstance(length_penalty, (int, float)) and length_penalty < 0:
        raise ValueError(
            "`length_penalty` (GNMT alpha) must be >= 0. Received: "
            f"length_penalty={length_penalty}"
        )
    start_tokens = _check_args(start_tokens, end_token, max_length)
    k = beam_width
    batch = tf.shape(start_tokens)[0]
    end_token = tf.cast(end_token, tf.int32)
    pad = tf.cast(pad_token, tf.int32)
    alpha = tf.cast(length_penalty, tf.float32)
    state = tile_beams(initial_state, k)
    context = None if context is None else tile_beams(context, k)
    # Flat row of beam `j` of example `b` is `b * k + j`.
    batch_offsets = tf.range(batch)[:, None] * k  # [B, 1]

    def update(carry, logits, attention, step):
        (
            tokens,
            lengths,
            log_probs,
            finished,
            history,
            att_history,
        ) = carry
        log_p = _log_softmax(logits)  # [B*K, V]
        # Two stages, the same winners: a beam's ranking is monotone in its
        # log-probabilities, so only its `K` best tokens can survive; the
        # penalised ranking then runs over `K * K` candidates per example
        # instead of `K * V` (the full-vocabulary passes dominated a step).
        width = k if log_p.shape[-1] is None else min(k, log_p.shape[-1])
        log_p, candidates = tf.math.top_k(log_p, width)  # [B*K, W]
        log_p = tf.reshape(log_p, [batch, k, width])
        candidates = tf.reshape(candidates, [batch, k * width])
        # Finished beams: only `pad` may follow, at no cost.
        pad_only = tf.where(tf.range(width) == 0, 0.0, NEG_INF)  # [W]
        log_p = tf.where(finished[..., None], pad_only, log_p)
        total = log_probs[..., None] + log_p  # [B, K, W]
        new_lengths = lengths + tf.cast(~finished, tf.int32)  # [B, K]
        ranking = total / gnmt_length_penalty(new_lengths, alpha)[..., None]
        _, best = tf.math.top_k(tf.reshape(ranking, [batch, k * width]), k)
        parent = best // width  # [B, K]
        # A finished parent's token is `pad` (below).
        token = tf.gather(candidates, best, batch_dims=1)  # [B, K]
        log_probs = tf.gather(
            tf.reshape(total, [batch, k * width]), best, batch_dims=1
        )
        lengths = tf.gather(new_lengths, parent, batch_dims=1)
        was_finished = tf.gather(finished, parent, batch_dims=1)
        token = tf.where(was_finished, pad, token)
        history = tf.gather(history, parent, batch_dims=1)
        history = _write(history, step, token, axis=2)
        if attention is not None:
            attention = tf.reshape(
                tf.cast(attention, tf.float32), [batch, k, -1]
            )
            attention = tf.gather(attention, parent, batch_dims=1)
            attention = tf.where(was_finished[..., None], 0.0, attention)
            att_history = tf.gather(att_history, parent, batch_dims=1)
            att_history = _write(att_history, step, attention, axis=2)
        finished = was_finished | tf.equal(token, end_token)
        rows = tf.reshape(parent + batch_offsets, [-1])  # [B*K]
        carry = (
            tf.reshape(token, [-1]),
            lengths,
            log_probs,
            finished,
            history,
            att_history,
        )
        return carry, rows

    # All beams start identical: only beam 0 may expand at step 0.
    initial_log_probs = tf.tile(
        tf.concat([[0.0], tf.fill([k - 1], NEG_INF)], 0)[None], [batch, 1]
    )
    carry, with_attention = _search_loop(
        step_fn,
        state,
        context,
        tf.repeat(start_tokens, k),
        initial_log_probs,
        [batch, k],
        pad,
        max_length,
        update,
    )
    _, lengths, log_probs, _, tokens, att_history = carry
    scores = log_probs / gnmt_length_penalty(lengths, alpha)
    # Candidates were ranked by this score, but a stop at `max_length`
    # can leave ties broken by an earlier step: sort once more.
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    take = lambda x: tf.gather(x, order, batch_dims=1)  # noqa: E731
    return DecodeResult(
        tokens=take(tokens),
        lengths=take(lengths),
        scores=take(scores),
        log_probs=take(log_probs),
        attention=take(att_history) if with_attention else None,
    )


SEARCH_METHODS = ("greedy", "beam")


def check_search_method(method):
    """Raises `ValueError` unless `method` names a search of this module."""
    check_choice("method", method, SEARCH_METHODS)


def search(
    method,
    step_fn,
    initial_state,
    start_tokens,
    end_token,
    max_length,
    beam_width=4,
    length_penalty=0.0,
    context=None,
    pad_token=0,
):
    """Runs `greedy_search` or `beam_search`, chosen by `method`.

    Args:
        method: `"greedy"` or `"beam"`; `beam_width` and `length_penalty`
            apply to beam search only. Other arguments as the searches.

    Returns:
        The search's `DecodeResult`.
    """
    check_search_method(method)
    if method == "greedy":
        return greedy_search(
            step_fn,
            initial_state,
            start_tokens,
            end_token,
            max_length,
            context=context,
            pad_token=pad_token,
        )
    return beam_search(
        step_fn,
        initial_state,
        start_tokens,
        end_token,
        max_length,
        beam_width=beam_width,
        length_penalty=length_penalty,
        context=context,
        pad_token=pad_token,
    )


def compile_search(search_fn, jit_compile=False, reduce_retracing=True):
    """`tf.function(search_fn)`, optionally XLA-compiled.

    Args:
        search_fn: a function that runs `greedy_search` / `beam_search`
            (e.g. a closure over a model's encoder and step function).
        jit_compile: compile with XLA.
        reduce_retracing: let `tf.function` generalise input shapes.

    Returns:
        The compiled function.
    """
    return tf.function(
        search_fn, jit_compile=jit_compile, reduce_retracing=reduce_retracing
    )
