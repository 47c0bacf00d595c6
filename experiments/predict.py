"""`python -m experiments predict RUN_DIR INPUT ...`: a finished run's model
on new input, with its attention shown.

Every task reads the run's exported SavedModel (`saved_model/<highest
version>/`), so what it prints is what serving returns, after checking
that the run finished and that its outputs still match the SHA-256
checksums its run record holds (`experiments.rundir.damaged_outputs`):

- translation: the translation of each sentence (beam or greedy), a text
  alignment table (one row per target word, its most attended source
  words) and with `--plot out.png` the alignment heatmap of Bahdanau et
  al. 2014 (fig. 3) over words (WordPiece pieces merged into the words
  they spell);
- text classification: the label, the class probabilities and the most
  attended words with their weights (Yang et al. 2016's figure with
  `--plot`: every word coloured by its weight);
- image classification: the label and the most probable classes of image
  files (PNG, JPEG, GIF or BMP, decoded by TensorFlow; resized to the
  trained size by the export), and with `--plot` the model's attention
  maps (CBAM spatial gates, non-local attention, ViT attention rollout,
  class activation maps) over each image. The export serves
  probabilities only, so the maps come from the run's `model.keras`,
  checksum-verified like the export;
- image captioning: the caption of each image file (beam or greedy), the
  location each word attended to most, and with `--plot` one panel per
  word with its attention over the image (Xu et al. 2015, fig. 2/3).
"""

import json
import os

import numpy as np

from experiments import rundir
from experiments.errors import UserError

SEARCHES = ("beam", "greedy")
# Entries listed per input when `--top` is not given: source words per
# target word (translation), attended words and classes (text), classes
# (image).
DEFAULT_TOP = {"translation": 3, "text_classification": 5}
DEFAULT_TOP_CLASSES = 5


def add_parser(subparsers):
    """Adds the `predict` subcommand to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "predict",
        help="run a finished run's exported model on new input and show "
        "its attention",
        description="Runs a finished run's exported model on new input: "
        "sentences for translation and text classification runs, image "
        "files (PNG, JPEG, GIF, BMP) for image classification and "
        "captioning runs.",
    )
    parser.add_argument("run_dir", help="a finished run folder")
    parser.add_argument(
        "inputs",
        nargs="+",
        help="texts (translation, text classification) or image files "
        "(image classification, captioning)",
    )
    parser.add_argument(
        "--search",
        choices=SEARCHES,
        help="decoding search of translation and captioning runs "
        "(default: the run's exported default)",
    )
    parser.add_argument(
        "--plot", metavar="PNG", help="write the attention figure here"
    )
    parser.add_argument(
        "--top",
        type=int,
        help="entries listed per input: source words per target word "
        "(translation, default 3), words and classes (text, default 5), "
        "classes (image, default 5)",
    )
    return parser


def open_run(run_dir):
    """The config (a dict) of the finished, undamaged run in `run_dir`."""
    if not os.path.isdir(run_dir):
        raise UserError(
            f"No run folder {run_dir!r} (no such directory). Received: "
            f"run_dir={run_dir!r}"
        )
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise UserError(
            f"{run_dir!r} is not a run folder (no config.json). Received: "
            f"run_dir={run_dir!r}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is unreadable ({err}).") from None
    if not os.path.isfile(os.path.join(run_dir, "metrics.json")):
        raise UserError(
            f"The run {run_dir!r} did not finish (no metrics.json). Rerun "
            "it with the same --out to complete it."
        )
    damaged = rundir.damaged_outputs(run_dir)
    if damaged:
        raise UserError(
            f"The outputs of the run {run_dir!r} changed after it wrote "
            f"them: {'; '.join(damaged)}. Rerun it with the same --out to "
            "rewrite them."
        )
    return config


def saved_model_path(run_dir):
    """The run's exported SavedModel (its highest numbered version)."""
    path = os.path.join(run_dir, "saved_model")
    if not os.path.isdir(path):
        raise UserError(
            f"The run {run_dir!r} has no exported model (saved_model/): it "
            "ran with export=false or did not finish. Rerun it with the "
            "same --out (and export=true) to export it."
        )
    versions = [v for v in os.listdir(path) if v.isdigit()]
    if versions:
        path = os.path.join(path, max(versions, key=int))
    return path


def _load_export(run_dir):
    import tensorflow as tf

    return tf.saved_model.load(saved_model_path(run_dir))


def _search_fn(loaded, config, search):
    """The exported function of `search` (`None`: the export's default)
    and the search's name."""
    default = config.get("eval", {}).get("export_search", "beam")
    search = search or default
    name = "serving_default" if search == default else search
    return getattr(loaded, name), search


def _plot_folder(plot):
    folder = os.path.dirname(os.path.abspath(plot))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"Cannot write the figure {plot!r}: {err.strerror}. Received: "
            f"--plot={plot!r}"
        ) from None


def _numbered(plot, index, count):
    """`plot` for one figure; `out_1.png`, `out_2.png`, ... for several."""
    if count == 1:
        return plot
    stem, ext = os.path.splitext(plot)
    return f"{stem}_{index + 1}{ext or '.png'}"


def read_image(path, channels):
    """A uint8 `[H, W, channels]` array of the image file `path`.

    PNG, JPEG, GIF (first frame) and BMP, decoded by TensorFlow; colour
    images are converted to grey for `channels=1` and grey ones tiled for
    `channels=3`. An unreadable file raises a one-line `UserError`.
    """
    import tensorflow as tf

    if not os.path.isfile(path):
        raise UserError(f"No image file {path!r}. Received: inputs={path!r}")
    try:
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
    except tf.errors.OpError as err:
        reason = (err.message or type(err).__name__).splitlines()[0]
        raise UserError(
            f"Cannot read the image {path!r} (PNG, JPEG, GIF or BMP "
            f"expected): {reason}. Received: inputs={path!r}"
        ) from None
    return image.numpy()


def _probabilities_line(names, probabilities, top):
    order = np.argsort(-probabilities)[:top]
    return ", ".join(f"{names[j]} {probabilities[j]:.3f}" for j in order)


def _decode(values):
    return [v.decode("utf-8", "replace") for v in np.asarray(values).tolist()]


# === Translation ===


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


def predict_translation(run_dir, config, sentences, args):
    import tensorflow as tf

    from experiments import alignment
    from experiments import plots

    loaded = _load_export(run_dir)  # alive while its functions run
    serve, search = _search_fn(loaded, config, args.search)
    outputs = serve(tf.constant(sentences))
    translations = _decode(outputs["translation"].numpy())
    sources = _strings(outputs["source_tokens"].numpy())
    targets = _strings(outputs["target_tokens"].numpy())
    attention = outputs.get("attention")
    if args.plot and attention is None:
        raise UserError("--plot needs a model with attention")
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
        print(alignment_table(matrix, source_words, target_words, args.top))
        print()
        figures.append((matrix, source_words, target_words, sentence))
    if args.plot:
        _plot_folder(args.plot)
        plots.alignment_heatmaps(
            figures,
            args.plot,
            title=f"{config['model']['name']}: attention over words "
            f"({search} search)",
        )
        print(f"alignment heatmap: {args.plot}")
    return 0


# === Text classification ===


def predict_text(run_dir, config, texts, args):
    import tensorflow as tf

    from experiments import plots
    from zoo.text.word_attention import from_outputs

    loaded = _load_export(run_dir)  # alive while its functions run
    serve = loaded.signatures["serving_default"]
    outputs = serve(text=tf.constant(texts, tf.string))
    outputs = {key: value.numpy() for key, value in outputs.items()}
    attended = from_outputs(texts, outputs)
    labels = _decode(outputs["label"])
    names = _decode(outputs["label_names"][0]) if len(texts) else []
    captions = []
    for i, text in enumerate(attended):
        probabilities = outputs["probabilities"][i]
        order = np.argsort(-text.weights)[: args.top]
        words = ", ".join(
            f"{text.tokens[j]} {text.weights[j]:.3f}" for j in order
        )
        print(f"text:           {text.text}")
        print(f"label:          {labels[i]} (p={probabilities.max():.3f})")
        print(
            "probabilities:  "
            + _probabilities_line(names, probabilities, args.top)
        )
        print(f"attended words: {words or '(no words)'}")
        print()
        captions.append(f"predicted {labels[i]} (p={probabilities.max():.2f})")
    if args.plot:
        _plot_folder(args.plot)
        plots.word_attention(
            [(a.tokens, a.weights) for a in attended],
            args.plot,
            captions=captions,
            title=f"{config['model']['name']}: word attention",
        )
        print(f"word attention: {args.plot}")
    return 0


# === Image classification ===


def _resize(image, size):
    """`image` resized (bilinear, antialiased, rounded) to `size` as the
    image classifier's export does."""
    import tensorflow as tf

    if tuple(image.shape[:2]) == tuple(size):
        return image
    resized = tf.image.resize(image, size, antialias=True)
    return tf.cast(
        tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8
    ).numpy()


def _attention_maps(run_dir, images):
    """`{name: [N, h, w]}` attention maps of the run's `model.keras`."""
    import zoo
    from zoo.attention_maps import attention_maps

    path = os.path.join(run_dir, "model.keras")
    try:
        model = zoo.load_model(path, compile=False)
    except (OSError, ValueError) as err:
        raise UserError(
            f"--plot needs the run's model.keras: {err}".splitlines()[0]
        ) from None
    return attention_maps(model, np.stack(images))


def predict_image(run_dir, config, paths, args):
    from experiments import plots

    loaded = _load_export(run_dir)
    height, width, channels = loaded.metadata()["image_size"].numpy()
    images, captions = [], []
    for path in paths:
        image = read_image(path, int(channels))
        outputs = loaded.serving_default(image[None])
        probabilities = outputs["probabilities"][0].numpy()
        names = _decode(outputs["label_names"][0].numpy())
        label = _decode(outputs["label"].numpy())[0]
        resized = bool(outputs["resized"][0].numpy())
        size = f"{image.shape[1]}x{image.shape[0]}"
        note = f", resized to {width}x{height}" if resized else ""
        print(f"image:   {path} ({size}{note})")
        print(f"label:   {label} (p={probabilities.max():.3f})")
        print(f"classes: {_probabilities_line(names, probabilities, args.top)}")
        print()
        images.append(_resize(image, (int(height), int(width))))
        captions.append(
            f"{os.path.basename(path)}: {label} (p={probabilities.max():.2f})"
        )
    if args.plot:
        maps = _attention_maps(run_dir, images)
        if not maps:
            raise UserError(
                f"--plot: the model {config['model']['name']!r} has no "
                "attention maps to draw"
            )
        _plot_folder(args.plot)
        plots.attention_overlays(
            np.stack(images),
            maps,
            args.plot,
            captions=captions,
            title=f"{config['model']['name']}: where the model looks",
        )
        print(f"attention maps ({', '.join(maps)}): {args.plot}")
    return 0


# === Image captioning ===


def _caption_words(words, attention):
    """The caption's words, then "[END]" when the model stopped before
    the maximum length, and their attention maps."""
    count = sum(1 for w in words if w)
    words = words[:count] + (["[END]"] if count < len(words) else [])
    return words, attention[: len(words)]


def predict_captioning(run_dir, config, paths, args):
    from experiments import plots

    loaded = _load_export(run_dir)  # alive while its functions run
    serve, search = _search_fn(loaded, config, args.search)
    figures = []
    for path in paths:
        image = read_image(path, 3)
        outputs = serve(image[None])
        words, maps = _caption_words(
            _decode(outputs["words"][0].numpy()),
            outputs["attention"][0].numpy(),
        )
        caption = _decode(outputs["caption"].numpy())[0]
        rows, cols = maps.shape[1:]
        print(f"image:   {path}")
        print(f"caption: {caption}  ({search} search)")
        for word, grid in zip(words, maps):
            row, col = np.unravel_index(np.argmax(grid), grid.shape)
            print(
                f"  {word:<12} looks most at row {row + 1}, column "
                f"{col + 1} of {rows}x{cols} ({grid[row, col]:.2f})"
            )
        print()
        figures.append((path, image, words, maps, caption))
    if args.plot:
        _plot_folder(args.plot)
        for i, (path, image, words, maps, caption) in enumerate(figures):
            out = _numbered(args.plot, i, len(figures))
            plots.caption_attention(
                image,
                words,
                maps,
                out,
                title=f"{config['model']['name']}: {caption!r} "
                f"({os.path.basename(path)}, {search} search)",
            )
            print(f"caption attention: {out}")
    return 0


PREDICTORS = {
    "translation": predict_translation,
    "text_classification": predict_text,
    "image_classification": predict_image,
    "image_captioning": predict_captioning,
}
SEARCHING = ("translation", "image_captioning")


def main(args):
    """Runs `predict` for the parsed CLI arguments; returns the status."""
    config = open_run(args.run_dir)
    task = config.get("task")
    if task not in PREDICTORS:
        raise UserError(
            f"predict supports {sorted(PREDICTORS)} runs; this run's task is "
            f"{task!r}. Received: run_dir={args.run_dir!r}"
        )
    if args.search and task not in SEARCHING:
        raise UserError(
            f"--search applies to translation and captioning runs; this "
            f"run's task is {task!r}. Received: --search={args.search}"
        )
    if args.top is None:
        args.top = DEFAULT_TOP.get(task, DEFAULT_TOP_CLASSES)
    if args.top < 1:
        raise UserError(f"--top must be >= 1. Received: --top={args.top}")
    return PREDICTORS[task](args.run_dir, config, args.inputs, args)
