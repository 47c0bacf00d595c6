"""`python -m experiments predict RUN_DIR TEXT ...`: a finished run's model
on new input, with its attention shown.

For a translation run: the translation of each sentence (beam or greedy,
as exported), a text alignment table in the terminal (one row per target
word, its three most attended source words), and with `--plot out.png`
the alignment heatmap of Bahdanau et al. 2014 (fig. 3) over words:
WordPiece pieces are merged into the words they spell. Everything comes
from the run's exported SavedModel, so it shows what serving returns.
"""

import json
import os

import numpy as np

from experiments.errors import UserError

SEARCHES = ("beam", "greedy")


def add_parser(subparsers):
    """Adds the `predict` subcommand to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "predict",
        help="run a finished run's exported model on new input and show "
        "its attention",
    )
    parser.add_argument("run_dir", help="a finished run folder")
    parser.add_argument(
        "inputs", nargs="+", help="input texts (one sentence each)"
    )
    parser.add_argument(
        "--search",
        choices=SEARCHES,
        help="decoding search (default: the run's exported default)",
    )
    parser.add_argument(
        "--plot", metavar="PNG", help="write the attention heatmaps here"
    )
    parser.add_argument(
        "--top",
        type=int,
        default=3,
        help="source words listed per target word (default 3)",
    )
    return parser


def _read_config(run_dir):
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise UserError(
            f"{run_dir!r} is not a run folder (no config.json). Received: "
            f"run_dir={run_dir!r}"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def saved_model_path(run_dir):
    """The run's exported SavedModel (its highest numbered version)."""
    path = os.path.join(run_dir, "saved_model")
    if not os.path.isdir(path):
        raise UserError(
            f"The run {run_dir!r} has no exported model (saved_model/): it "
            "did not finish. Rerun it with the same --out to complete it."
        )
    versions = [v for v in os.listdir(path) if v.isdigit()]
    if versions:
        path = os.path.join(path, max(versions, key=int))
    return path


def alignment_table(matrix, source_words, target_words, top=3):
    """Text table: each target word and its most attended source words."""
    width = max([len(w) for w in target_words] + [6])
    lines = [f"{'target':<{width}}  attends to (weight)"]
    for row, word in enumerate(target_words):
        order = np.argsort(-matrix[row])[:top]
        cells = ", ".join(
            f"{source_words[j]} ({matrix[row, j]:.2f})"
            for j in order
            if matrix[row, j] > 0
        )
        lines.append(f"{word:<{width}}  {cells}")
    return "\n".join(lines)


def _strings(tensor):
    return [
        [t.decode("utf-8") for t in row if t]
        for row in np.asarray(tensor).tolist()
    ]


def predict_translation(run_dir, config, sentences, search, plot, top):
    import tensorflow as tf

    from experiments import alignment
    from experiments import plots

    default = config.get("eval", {}).get("export_search", "beam")
    search = search or default
    loaded = tf.saved_model.load(saved_model_path(run_dir))
    serve = getattr(loaded, "serving_default" if search == default else search)
    outputs = serve(tf.constant(sentences))
    translations = [t.decode("utf-8") for t in outputs["translation"].numpy()]
    sources = _strings(outputs["source_tokens"].numpy())
    targets = _strings(outputs["target_tokens"].numpy())
    attention = outputs.get("attention")
    figures = []
    for i, sentence in enumerate(sentences):
        print(f"source:      {sentence}")
        print(f"translation: {translations[i]}  ({search} search)")
        if attention is None:
            print("(this model has no attention)\n")
            continue
        matrix, source_words, target_words = alignment.word_alignment(
            attention[i].numpy(), sources[i], targets[i]
        )
        print(alignment_table(matrix, source_words, target_words, top))
        print()
        figures.append((matrix, source_words, target_words, sentence))
    if plot and figures:
        os.makedirs(os.path.dirname(os.path.abspath(plot)), exist_ok=True)
        plots.alignment_heatmaps(
            figures,
            plot,
            title=f"{config['model']['name']}: attention over words "
            f"({search} search)",
        )
        print(f"alignment heatmap: {plot}")
    elif plot:
        raise UserError("--plot needs a model with attention")
    return 0


PREDICTORS = {"translation": predict_translation}


def main(args):
    """Runs `predict` for the parsed CLI arguments; returns the status."""
    config = _read_config(args.run_dir)
    task = config.get("task")
    if task not in PREDICTORS:
        raise UserError(
            f"predict supports {sorted(PREDICTORS)} runs; this run's task is "
            f"{task!r}. Received: run_dir={args.run_dir!r}"
        )
    if args.top < 1:
        raise UserError(f"--top must be >= 1. Received: --top={args.top}")
    return PREDICTORS[task](
        args.run_dir, config, args.inputs, args.search, args.plot, args.top
    )
