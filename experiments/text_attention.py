"""Word-attention pictures of an exported text classifier.

    python -m experiments.text_attention RUN_DIR \\
        "A gorgeous, witty film." "Dull and far too long." --out pictures/

loads the SavedModel (with `tf.saved_model.load`, as a server would),
serves the texts through its `serving_default` signature and writes
`word_attention.html` and `word_attention.png` (each word coloured by the
weight the model gave it; `han`: word x sentence weight) into `--out`.
`RUN_DIR` is the run folder, its `saved_model/` (the newest numbered
version is served) or a SavedModel folder itself.
"""

import argparse
import os
import sys

import tensorflow as tf

from experiments.errors import UserError
from experiments.predict import saved_model_path
from experiments.tasks.text_classification import write_attention_files
from zoo.text.word_attention import from_outputs


def _saved_model_folder(path):
    """The SavedModel folder of a run folder, of its `saved_model/` (the
    newest numbered version) or a SavedModel folder itself."""
    path = os.path.normpath(path)
    if os.path.isdir(os.path.join(path, "saved_model")):
        path = saved_model_path(path)
    elif os.path.basename(path) == "saved_model":
        path = saved_model_path(os.path.dirname(path))
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise UserError(
            f"{path!r} holds no SavedModel (saved_model.pb). Pass a run "
            "folder, its saved_model/ folder or a SavedModel folder."
        )
    return path


def serve(path, texts):
    """The serving outputs (NumPy) of the SavedModel at `path` for `texts`."""

    path = _saved_model_folder(path)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    if "attention_weights" not in signature.structured_outputs:
        raise UserError(
            f"The model in {path!r} does not serve attention weights (not "
            "an exported text classifier)."
        )
    encoded = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    outputs = signature(text=tf.constant(encoded, tf.string))
    return {key: value.numpy() for key, value in outputs.items()}


def draw(path, texts, out, title=None):
    """Serves `texts` and writes the HTML and PNG pictures into `out`.

    Returns:
        The JSON-ready records of `write_attention_files`.
    """

    outputs = serve(path, texts)
    attended = from_outputs(texts, outputs)
    captions = [
        f"predicted {label.decode('utf-8', 'replace')} (p={probs.max():.2f})"
        for label, probs in zip(outputs["label"], outputs["probabilities"])
    ]
    os.makedirs(out, exist_ok=True)
    return write_attention_files(
        attended, captions, out, title or f"{path}: word attention"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.text_attention",
        description="Draw the word attention of an exported text model.",
    )
    parser.add_argument(
        "model", help="run folder, its saved_model/ or a SavedModel folder"
    )
    parser.add_argument("texts", nargs="+", help="texts to classify")
    parser.add_argument("--out", default=".", help="output folder")
    args = parser.parse_args(argv)
    try:
        records = draw(args.model, args.texts, args.out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    for record in records:
        top = sorted(zip(record["weights"], record["tokens"]), reverse=True)[:3]
        words = ", ".join(f"{t} ({w:.2f})" for w, t in top)
        print(f"{record['caption']}: most attended: {words or '-'}")
    print(f"Written to {os.path.join(args.out, 'word_attention.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
