"""Benchmark 7: serving latency of exported SavedModels in a clean process.

One model per task, exported with the experiments' own export functions
(the `serving_default` signatures a trained run writes):

- image classification: `cbam_resnet20`, uint8 CIFAR-shaped images in ->
  class probabilities;
- text classification: `transformer_classifier` (the movie-sentences
  recipe size), raw strings in -> probabilities, tokens, word attention;
- translation: `transformer_translator` (the Ding recipe size) with
  WordPiece tokenisers, German strings in -> English strings out, beam
  search (4 beams) inside the graph;
- image captioning: `show_attend_tell_soft` (the digit_scenes recipe),
  uint8 images in -> captions and attention maps, beam search (3 beams).

Each SavedModel is then loaded with `tf.saved_model.load` in a fresh
Python process that never imports this project (checked), and its
`serving_default` is timed at batch 1 and batch 32: p50 and p99 latency.

The weights are untrained (latency does not depend on their values),
except that an untrained translator or captioner never emits the end
token early: it decodes its full maximum length, the worst case.
"""

import collections
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import types

import numpy as np

from benchmarks import stats
from benchmarks.registry import Result
from benchmarks.registry import register_benchmark

IMAGE_SHAPE = (32, 32, 3)
DING_PATH = "/usr/share/trans/de-en"

_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    sys.path = [p for p in sys.path if p not in ("", {root!r})]
    import numpy as np
    import tensorflow as tf
    cases = json.load(open({manifest!r}))
    results = {{}}
    for case in cases:
        start = time.perf_counter()
        loaded = tf.saved_model.load(case["path"])
        fn = loaded.signatures["serving_default"]
        load_s = time.perf_counter() - start
        entry = {{"load_s": load_s}}
        for batch, calls in case["batches"]:
            data = np.load(case["inputs"])[case["input_name"]]
            feed = {{case["input_name"]: tf.constant(data[:batch])}}
            start = time.perf_counter()
            out = fn(**feed)
            first = time.perf_counter() - start
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                out = fn(**feed)
                _ = {{k: v.numpy() for k, v in out.items()}}
                times.append((time.perf_counter() - start) * 1e3)
            entry[str(batch)] = {{
                "first_call_ms": first * 1e3,
                "latency_ms": times,
                "outputs": sorted(out),
                "output_shapes": {{k: list(v.shape) for k, v in out.items()}},
            }}
        results[case["task"]] = entry
    leaked = sorted(m for m in sys.modules
                    if m.split(".")[0] in {packages!r})
    results["_project_modules_imported"] = leaked
    json.dump(results, open({result!r}, "w"))
    """
)
PROJECT_PACKAGES = ("layers", "zoo", "experiments", "benchmarks", "tests")


def _corpus(count):
    """`(german, english)` sentence lists: the Ding pairs if installed,
    else generated word sequences (latency does not depend on them)."""

    if os.path.exists(DING_PATH):
        from experiments.datasets.ding_de_en import read_pairs

        pairs = read_pairs(DING_PATH)[:count]
        return [p[0] for p in pairs], [p[1] for p in pairs], "Ding de-en"
    rng = np.random.default_rng(0)
    words = [f"wort{i}" for i in range(3000)]
    de = [" ".join(rng.choice(words, 10)) + "." for _ in range(count)]
    en = [s.replace("wort", "word") for s in de]
    return de, en, "generated"


def _wordpiece_vocab(sentences, size):
    """Reserved tokens, every character (plain and `##`), frequent words."""
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    from experiments.wordpiece import pretokenize
    from zoo.tokens import RESERVED_TOKENS

    words = collections.Counter()
    for line in pretokenize(sentences).numpy():
        words.update(line.decode("utf-8").split())
    chars = sorted({c for w in words for c in w})
    vocab = list(RESERVED_TOKENS) + chars + [f"##{c}" for c in chars]
    for word, _ in words.most_common():
        if len(vocab) >= size:
            break
        if word not in vocab:
            vocab.append(word)
    return vocab


def export_models(folder):
    """Exports the three models into `folder`; returns case descriptions."""
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import zoo
    from experiments import runner
    from experiments.tasks.captioning import (
        build_vocabulary as build_caption_vocabulary,
    )
    from experiments.tasks.captioning import export_captioner
    from experiments.tasks.image_classification import TASK as IMAGE
    from experiments.tasks.text_classification import export_text_classifier
    from experiments.tasks.translation import export_translator
    from experiments.wordpiece import WordPieceTokenizer
    from zoo.text import build_vocabulary

    german, english, corpus = _corpus(4000)
    cases = []

    # Image classification.
    model = zoo.build("cbam_resnet20", input_shape=IMAGE_SHAPE, num_classes=10)
    data = types.SimpleNamespace(
        info={
            "input_shape": list(IMAGE_SHAPE),
            "label_names": [f"class_{i}" for i in range(10)],
        }
    )
    path = os.path.join(folder, "image")
    IMAGE.export(model, data, None, path)
    images = np.random.default_rng(0).integers(0, 256, (32, *IMAGE_SHAPE))
    np.savez(os.path.join(folder, "image.npz"), images=images.astype("uint8"))
    cases.append(
        {
            "task": "image classification",
            "model": "cbam_resnet20 (32 x 32 x 3)",
            "path": path,
            "inputs": os.path.join(folder, "image.npz"),
            "input_name": "images",
        }
    )

    # Text classification.
    recipe = runner.resolve("movie_sentences_transformer_classifier")
    vocabulary = build_vocabulary(english, max_tokens=20000)
    model = zoo.build(
        "transformer_classifier",
        vocabulary=vocabulary,
        num_classes=2,
        **recipe.model.kwargs,
    )
    path = os.path.join(folder, "text")
    export_text_classifier(model, ["negative", "positive"], path)
    np.savez(
        os.path.join(folder, "text.npz"),
        text=np.array([t.encode("utf-8") for t in english[:32]]),
    )
    cases.append(
        {
            "task": "text classification",
            "model": "transformer_classifier (movie_sentences recipe)",
            "path": path,
            "inputs": os.path.join(folder, "text.npz"),
            "input_name": "text",
        }
    )

    # Translation.
    recipe = runner.resolve("ding_transformer_translator")
    source = WordPieceTokenizer(_wordpiece_vocab(german, 8000))
    target = WordPieceTokenizer(_wordpiece_vocab(english, 8000))
    model = zoo.build(
        "transformer_translator",
        source_vocab_size=source.vocab_size,
        target_vocab_size=target.vocab_size,
        **recipe.model.kwargs,
    )
    ids = np.ones((1, 4), "int32")
    model({"source": ids, "target_in": ids})
    path = os.path.join(folder, "translation")
    export_translator(
        model,
        source,
        target,
        path,
        max_source_length=recipe.data.max_source_length,
        max_target_length=recipe.data.max_target_length,
        beam_width=recipe.eval.beam_width,
        length_penalty=recipe.eval.length_penalty,
        search="beam",
    )
    np.savez(
        os.path.join(folder, "translation.npz"),
        sentences=np.array([t.encode("utf-8") for t in german[100:132]]),
    )
    cases.append(
        {
            "task": "translation",
            "model": "transformer_translator (ding recipe), beam 4, "
            f"max {recipe.data.max_target_length} tokens",
            "path": path,
            "inputs": os.path.join(folder, "translation.npz"),
            "input_name": "sentences",
        }
    )
    # Image captioning.
    recipe = runner.resolve("digit_scenes_soft")
    digits = ("zero one two three four five six seven eight nine").split()
    vocabulary = build_caption_vocabulary(
        [f"{a} left of {b}" for a in digits for b in digits]
        + [f"{a} above {b}" for a in digits for b in digits]
    )
    model = zoo.build(
        recipe.model.name,
        vocab_size=len(vocabulary),
        max_caption_length=recipe.data.max_caption_length,
        **recipe.model.kwargs,
    )
    height, width, channels = (int(d) for d in model.image_shape)
    path = os.path.join(folder, "captioning")
    export_captioner(
        model,
        vocabulary,
        path,
        max_caption_length=recipe.data.max_caption_length,
        beam_width=recipe.eval.beam_width,
        length_penalty=recipe.eval.length_penalty,
        search=recipe.eval.export_search,
    )
    scenes = np.random.default_rng(1).integers(
        0, 256, (32, height, width, channels)
    )
    np.savez(
        os.path.join(folder, "captioning.npz"), images=scenes.astype("uint8")
    )
    cases.append(
        {
            "task": "image captioning",
            "model": f"{recipe.model.name} (digit_scenes recipe, "
            f"{height} x {width} x {channels}), beam "
            f"{recipe.eval.beam_width}, max "
            f"{recipe.data.max_caption_length} tokens",
            "path": path,
            "inputs": os.path.join(folder, "captioning.npz"),
            "input_name": "images",
        }
    )
    return cases, corpus


def serve_in_clean_process(cases, folder, timeout=1200):
    """Times `serving_default` of each case in a fresh process; results."""
    manifest = os.path.join(folder, "manifest.json")
    result = os.path.join(folder, "latency.json")
    with open(manifest, "w") as f:
        json.dump(cases, f)
    script = _CLIENT.format(
        root=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        manifest=manifest,
        result=result,
        packages=PROJECT_PACKAGES,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"The serving process failed ({out.returncode}):\n"
            + out.stderr[-3000:]
        )
    with open(result) as f:
        return json.load(f)


@register_benchmark(
    "serving",
    "7",
    "Serving: exported SavedModels in a clean process, p50/p99 latency",
)
def serving(ctx):

    batches = ctx.pick(
        {
            "image classification": [(1, 100), (32, 30)],
            "text classification": [(1, 100), (32, 30)],
            "translation": [(1, 8), (32, 4)],
            "image captioning": [(1, 30), (32, 10)],
        },
        {
            "image classification": [(1, 10), (32, 3)],
            "text classification": [(1, 10), (32, 3)],
            "translation": [(1, 2), (32, 2)],
            "image captioning": [(1, 2), (32, 2)],
        },
    )
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        ctx.log("exporting one model per task")
        cases, corpus = export_models(folder)
        for case in cases:
            case["batches"] = batches[case["task"]]
        ctx.log("serving them in a clean process")
        served = serve_in_clean_process(cases, folder)
    leaked = served.pop("_project_modules_imported")
    if leaked:
        raise RuntimeError(f"The serving process imported {leaked}")
    rows, measurements = [], {}
    for case in cases:
        entry = served[case["task"]]
        measurements[case["task"]] = {"model": case["model"], **entry}
        for batch, calls in case["batches"]:
            lat = entry[str(batch)]["latency_ms"]
            p50 = stats.percentile(lat, 50)
            rows.append(
                [
                    case["task"],
                    case["model"],
                    batch,
                    calls,
                    p50,
                    stats.percentile(lat, 99),
                    batch * 1e3 / p50,
                    entry[str(batch)]["first_call_ms"],
                    entry["load_s"],
                ]
            )
    return Result(
        setup={
            "tasks": [c["task"] for c in cases],
            "batches": batches,
            "corpus": corpus,
        },
        method=(
            "Each model is exported with its task's export function (the "
            "`serving_default` a trained run writes) and loaded with "
            "`tf.saved_model.load` in a fresh Python process whose "
            "`sys.path` excludes the project (checked: no project module "
            "imported). After one untimed call, `serving_default` is called "
            "repeatedly on the same batch; latency = call + copy of every "
            "output to NumPy. p99 of few calls is close to the maximum."
        ),
        columns=[
            "task",
            "model",
            "batch",
            "calls",
            "p50 ms",
            "p99 ms",
            "items/s at p50",
            "first call ms",
            "load s",
        ],
        rows=rows,
        measurements=measurements,
        notes=[
            "Untrained weights: the translator decodes the full "
            "`max_target_length` (48 tokens) with 4 beams and the captioner "
            "its full `max_caption_length` for every input, the worst case; "
            "a trained model stops at its end token.",
            f"Text inputs: {corpus} sentences.",
        ],
    )
