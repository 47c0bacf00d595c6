"""Benchmark 6: decoding, compiled beam search vs eager, greedy vs beam.

The translation vertical's translators (`transformer_translator` with the
cached Transformer decoder, `seq2seq_bahdanau` with the attentive GRU
decoder) in their `ding_*` recipe sizes, decoding with `zoo.decoding`
through `Translator.generate`: beam search run eagerly (the
`tf.while_loop` executes step by step in Python) vs the same call
compiled into one graph with `zoo.decoding.compile_search`; and greedy
vs beam search, both compiled, in tokens per second. Untrained weights:
every search runs to `max_length` (no early end token), so both
contenders do the same number of steps; the speed of a step does not
depend on the weights' values.
"""

import numpy as np

from benchmarks.registry import Result
from benchmarks.registry import goal
from benchmarks.registry import register_benchmark
from benchmarks.suite.common import compare
from benchmarks.suite.common import judging_basis
from benchmarks.suite.common import speedup
from benchmarks.suite.common import speedup_cells

TARGET = 5.0
MODELS = ("transformer_translator", "seq2seq_bahdanau")
BATCH, SOURCE_LENGTH, BEAM = 16, 24, 4


def _translator(name, vocab):
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import zoo
    from experiments import runner

    experiment = (
        "ding_transformer_translator"
        if name == "transformer_translator"
        else f"ding_{name}"
    )
    kwargs = dict(runner.resolve(experiment).model.kwargs)
    model = zoo.build(
        name, source_vocab_size=vocab, target_vocab_size=vocab, **kwargs
    )
    return model, experiment, kwargs


def _source_ids(vocab, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, vocab, (BATCH, SOURCE_LENGTH)).astype("int32")
    lengths = rng.integers(SOURCE_LENGTH // 2, SOURCE_LENGTH + 1, BATCH)
    ids[np.arange(SOURCE_LENGTH)[None] >= lengths[:, None]] = 0
    return ids


@register_benchmark(
    "decoding",
    "6",
    "Decoding: compiled vs eager beam search; greedy vs beam tokens/s",
    goal=f"compiled beam search >= {TARGET:g}x eager step-by-step",
)
def decoding(ctx):
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import tensorflow as tf

    from zoo.decoding import compile_search

    basis, why = judging_basis()
    vocab = 8000
    max_length = ctx.pick(24, 12)
    source = tf.constant(_source_ids(vocab))
    rows, measurements, headline = [], {}, {}
    models = ctx.pick(MODELS, MODELS[:1])
    for name in models:
        model, experiment, kwargs = _translator(name, vocab)
        model({"source": source[:1, :4], "target_in": source[:1, :4]})  # build

        def search(ids, method, model=model):
            result = model.generate(
                ids,
                method=method,
                max_length=max_length,
                beam_width=BEAM,
                length_penalty=0.6,
            )
            lengths = result.lengths
            if method == "beam":
                lengths = lengths[:, 0]
            return tf.reduce_sum(lengths)

        compiled = {
            method: compile_search(lambda ids, m=method: search(ids, m))
            for method in ("greedy", "beam")
        }
        compiled["beam xla"] = compile_search(
            lambda ids: search(ids, "beam"), jit_compile=True
        )
        tokens = {}

        def run(fn, method, tokens=tokens):
            def call():
                tokens[method] = int(np.asarray(fn(source)))

            return call

        fns = {
            "beam, eager": run(lambda ids: search(ids, "beam"), "beam eager"),
            "beam, compiled": run(compiled["beam"], "beam"),
            "beam, compiled (XLA)": run(compiled["beam xla"], "beam xla"),
            "greedy, compiled": run(compiled["greedy"], "greedy"),
        }
        rounds = ctx.pick(3, 1)
        ctx.log(f"{name}: max_length {max_length}, {rounds} rounds")
        m = compare(fns, "beam, eager", warmup=1, rounds=rounds)
        measurements[name] = {**m, "tokens": dict(tokens)}
        # The goal: the better of the two compiled modes (same for both
        # clocks, chosen on the judging basis).
        best = max(
            ("beam, compiled", "beam, compiled (XLA)"),
            key=lambda k: speedup(m[k], basis),
        )
        headline[name] = (
            speedup(m[best], basis),
            speedup(m[best], "wall"),
            speedup(m[best], "cpu"),
            best,
        )
        produced = {
            "beam, eager": tokens["beam eager"],
            "beam, compiled": tokens["beam"],
            "beam, compiled (XLA)": tokens["beam xla"],
            "greedy, compiled": tokens["greedy"],
        }
        for label, entry in m.items():
            wall_s = entry["wall_ms"]["median"] / 1e3
            rows.append(
                [
                    name,
                    label,
                    produced[label],
                    entry["wall_ms"]["median"],
                    entry["cpu_ms"]["median"],
                    produced[label] / wall_s,
                    *speedup_cells(entry, label == "beam, eager"),
                ]
            )
        beam = m["beam, compiled"]["wall_ms"]["median"] / tokens["beam"]
        greedy = m["greedy, compiled"]["wall_ms"]["median"] / tokens["greedy"]
        measurements[name]["greedy_over_beam_tokens_per_s"] = beam / greedy
        measurements[name]["experiment"] = experiment
        measurements[name]["model_kwargs"] = kwargs
    return Result(
        setup={
            "models": list(models),
            "batch": BATCH,
            "source_length": SOURCE_LENGTH,
            "max_length": max_length,
            "beam_width": BEAM,
            "vocab_size": vocab,
        },
        method=(
            "`Translator.generate(source, method, max_length, beam_width=4)` "
            f"on a batch of {BATCH} padded sources of up to {SOURCE_LENGTH} "
            "tokens: called eagerly (each `tf.while_loop` step runs from "
            "Python) or compiled with `zoo.decoding.compile_search` "
            "(`tf.function`, also with XLA: `jit_compile=True`); one warm-up "
            "call each (tracing, compiling), then the "
            "contenders alternate. Tokens = produced tokens of the returned "
            "translations (best beam); tokens/s on wall time."
        ),
        columns=[
            "model",
            "search",
            "tokens",
            "ms, wall",
            "ms, CPU",
            "tokens/s, wall",
            "speed-up vs eager beam, wall",
            "speed-up, CPU",
        ],
        rows=rows,
        goals=[
            goal(
                f"compiled beam search >= {TARGET:g}x eager step-by-step "
                f"({name})",
                value,
                TARGET,
                ">=",
                measured=f"{wall:.1f}x wall / {cpu:.1f}x CPU ({mode})",
                basis=f"judged on {why}",
            )
            for name, (value, wall, cpu, mode) in headline.items()
        ],
        measurements=measurements,
        notes=[
            f"Greedy vs beam ({BEAM} beams) tokens/s, compiled: "
            + "; ".join(
                f"{n} {measurements[n]['greedy_over_beam_tokens_per_s']:.2f}x"
                for n in models
            )
            + " (greedy tokens/s over beam tokens/s).",
        ],
    )
