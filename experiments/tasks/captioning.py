"""Image captioning task: TFDS images + captions -> captioner -> BLEU,
exact captions, attention localisation -> SavedModel (uint8 -> strings).

Data: any TFDS dataset with an image and one caption or a sequence of
captions per image (the offline `digit_scenes`, official `coco_captions`,
or a prepared dataset directory); keys `data.image_key`,
`data.caption_key` (nested with `/`), optionally `data.boxes_key` (one box
per caption word, for the localisation metric). Captions are lower-cased,
stripped of punctuation and split into words; the word vocabulary (words
seen `data.min_word_count` times, most frequent first) is learnt from the
training split. Pipeline: decode (resize to `data.image_size`) -> one
example per caption -> `[START] words [END]` -> cache -> per-epoch seeded
shuffle (`experiments.data.TrainStream`) ->
padded batches of `({"images", "target_in"}, target_out)`.

Evaluation (greedy and beam search on the test split): corpus BLEU-1..4
with sacrebleu against all of an image's references, exact-caption
accuracy, the attention localisation (for each generated word with a box:
the fraction of the attention mass inside that box, the attention map
upsampled over the image), sample captions and per-word attention
overlays (PNG, one panel per generated word as in Xu et al. 2015, fig. 2).

Export: uint8 images `[B, H, W, C]` in (any size: resized to the model's;
1 or 3 channels: converted; an empty batch gives empty outputs) ->
captions, their words, per-word attention maps and scores; the search
runs in the graph, so only core TensorFlow is needed to serve it.
"""

import collections
import os
import time

import numpy as np
import sacrebleu
import tensorflow as tf

from experiments import data as data_lib
from experiments import export as export_lib
from experiments import plots
from experiments.configs.seq2seq import SEARCHES
from experiments.errors import UserError
from experiments.tasks.base import TaskData
from experiments.tasks.seq2seq import Seq2SeqTask
from experiments.tasks.seq2seq import export_searches
from zoo.tokens import END_ID
from zoo.tokens import PAD_ID
from zoo.tokens import RESERVED_TOKENS
from zoo.tokens import START_ID
from zoo.tokens import UNK_ID

AUTOTUNE = tf.data.AUTOTUNE
_PUNCTUATION = r"[^a-z0-9' ]+"


def normalize_captions(captions):
    """Lower-case, punctuation to spaces, single spaces (TF strings)."""
    text = tf.strings.lower(captions, encoding="utf-8")
    text = tf.strings.regex_replace(text, _PUNCTUATION, " ")
    text = tf.strings.regex_replace(text, " +", " ")
    return tf.strings.strip(text)


def build_vocabulary(captions, min_count=1, max_size=10000):
    """Reserved tokens, then words by falling count (ties alphabetical)."""
    counts = collections.Counter()
    for caption in captions:
        counts.update(caption.split())
    words = sorted(
        (w for w, n in counts.items() if n >= min_count),
        key=lambda w: (-counts[w], w),
    )
    return list(RESERVED_TOKENS) + words[:max_size]


def box_overlap_matrix(box, grid):
    """Fraction of each attention cell inside a normalised box.

    Args:
        box: `(ymin, xmin, ymax, xmax)` in [0, 1].
        grid: `(rows, cols)` of the attention map; cell `(r, c)` covers
            `[r / rows, (r + 1) / rows) x [c / cols, (c + 1) / cols)`.

    Returns:
        `[rows, cols]` float64: area of cell ∩ box / area of the cell, so
        `sum(map * overlap)` is the attention mass inside the box when the
        map is spread evenly over each cell (nearest upsampling).
    """
    rows, cols = grid
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    edges_y = np.arange(rows + 1) / rows
    edges_x = np.arange(cols + 1) / cols
    over_y = np.clip(
        np.minimum(edges_y[1:], ymax) - np.maximum(edges_y[:-1], ymin), 0, None
    )
    over_x = np.clip(
        np.minimum(edges_x[1:], xmax) - np.maximum(edges_x[:-1], xmin), 0, None
    )
    return np.outer(over_y * rows, over_x * cols)


def attention_in_boxes(attention, boxes, num_words, grid):
    """Attention mass inside the box of each generated word.

    Args:
        attention: `[L, rows * cols]` attention of each generated token.
        boxes: `[N, 4]` normalised boxes of the caption's words in order.
        num_words: generated words (without [END]).
        grid: `(rows, cols)`.

    Returns:
        A list of `min(num_words, N)` masses, word `j` against box `j`.
    """
    masses = []
    for j in range(min(num_words, len(boxes))):
        overlap = box_overlap_matrix(boxes[j], grid)
        weights = np.asarray(attention[j], "float64").reshape(grid)
        masses.append(float(np.sum(weights * overlap)))
    return masses


def _feature(example, key):
    value = example
    for part in key.split("/"):
        value = value[part]
    return value


def _check_nested_key(builder, key, config_key):
    features = builder.info.features
    node = features
    for part in key.split("/"):
        if hasattr(node, "feature") and not hasattr(node, "keys"):
            node = node.feature  # Sequence of a dict
        keys = sorted(node.keys()) if hasattr(node, "keys") else []
        if part not in keys:
            raise UserError(
                f"Dataset {builder.info.full_name!r} has no feature {key!r} "
                f"(set by {config_key}). Its features: "
                f"{', '.join(sorted(features.keys()))}."
            )
        node = node[part]


class CaptioningData(TaskData):
    """`TaskData` plus the vocabulary and the image shape."""

    def __init__(self, *args, vocabulary, image_shape, **kwargs):
        super().__init__(*args, **kwargs)
        self.vocabulary = vocabulary
        self.image_shape = image_shape


class CaptioningTask(Seq2SeqTask):
    """Trains and evaluates zoo captioners on TFDS image captions."""

    name = "image_captioning"
    primary_metric = "exact_beam"
    secondary_metrics = (
        "exact_greedy",
        "bleu4_beam",
        "attention_in_box_greedy",
    )
    comparison_columns = (
        ("exact greedy", "exact_greedy", ".4f"),
        ("exact beam", "exact_beam", ".4f"),
        ("BLEU-4 greedy", "bleu4_greedy", ".2f"),
        ("BLEU-4 beam", "bleu4_beam", ".2f"),
        ("mass in box", "attention_in_box_greedy", ".3f"),
        ("parameters", "num_parameters", ","),
        ("train time (s)", "train_time_s_all_epochs", ".0f"),
    )
    length_keys = ("max_caption_length",)
    sample_noun = "captions"

    def check_data_settings(self, config):
        cfg = config.data
        if cfg.image_size and (
            len(cfg.image_size) != 2 or min(cfg.image_size) < 1
        ):
            raise UserError(
                "data.image_size must be [height, width] of positive "
                f"integers. Received: data.image_size={cfg.image_size}"
            )
        if cfg.min_word_count < 1 or cfg.max_vocab_size < 1:
            raise UserError(
                "data.min_word_count and data.max_vocab_size must be >= 1. "
                f"Received: data.min_word_count={cfg.min_word_count}, "
                f"data.max_vocab_size={cfg.max_vocab_size}"
            )

    # --- Data -----------------------------------------------------------
    def _image_shape(self, builder, cfg):
        shape = tuple(builder.info.features[cfg.image_key].shape)
        channels = shape[-1] or 3
        if cfg.image_size:
            return (int(cfg.image_size[0]), int(cfg.image_size[1]), channels)
        if None in shape:
            raise UserError(
                f"Images of {builder.info.full_name!r} vary in size "
                f"{shape}: set data.image_size=[height,width] to resize them."
            )
        return shape

    def _examples(self, builder, split, cfg, shape, max_examples):
        """`(dataset of (image, captions [R], boxes [N, 4]), count)`."""
        ds, count = data_lib.open_split(builder, split, max_examples)
        resize = bool(cfg.image_size)

        def pick(example):
            image = example[cfg.image_key]
            if resize:
                image = tf.image.resize(image, shape[:2], antialias=True)
                image = tf.cast(
                    tf.round(tf.clip_by_value(image, 0, 255)), "uint8"
                )
            captions = tf.reshape(_feature(example, cfg.caption_key), [-1])
            if cfg.boxes_key:
                boxes = tf.reshape(
                    tf.cast(_feature(example, cfg.boxes_key), tf.float32),
                    [-1, 4],
                )
            else:
                boxes = tf.zeros([0, 4], tf.float32)
            return image, normalize_captions(captions), boxes

        return ds.map(pick, num_parallel_calls=AUTOTUNE), count

    def load_data(self, config, data_dir, strategy):
        cfg = config.data
        builder = data_lib.load_builder(cfg.name, data_dir, cfg.download)
        cfg = data_lib.resolve_splits(builder, cfg)
        data_lib.check_features(builder, {"data.image_key": cfg.image_key})
        _check_nested_key(builder, cfg.caption_key, "data.caption_key")
        if cfg.boxes_key:
            _check_nested_key(builder, cfg.boxes_key, "data.boxes_key")
        shape = self._image_shape(builder, cfg)

        train, num_images = self._examples(
            builder, cfg.train_split, cfg, shape, cfg.max_train_examples
        )
        if num_images == 0:
            raise UserError(f"The training split {cfg.train_split!r} is empty.")
        texts = [
            t.decode("utf-8")
            for captions in train.map(
                lambda i, c, b: c, num_parallel_calls=AUTOTUNE
            ).as_numpy_iterator()
            for t in captions
        ]
        vocabulary = build_vocabulary(
            texts, cfg.min_word_count, cfg.max_vocab_size
        )
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary[len(RESERVED_TOKENS) :]),
                tf.range(len(RESERVED_TOKENS), len(vocabulary), dtype=tf.int64),
            ),
            default_value=UNK_ID,
        )
        keep = cfg.max_caption_length - 2

        def encode(image, caption):
            words = tf.strings.split(caption)[:keep]
            ids = tf.cast(table.lookup(words), tf.int32)
            ids = tf.concat([[START_ID], ids, [END_ID]], 0)
            return {"images": image, "target_in": ids[:-1]}, ids[1:]

        def per_caption(image, captions, boxes):
            count = tf.shape(captions)[0]
            images = tf.repeat(image[None], count, axis=0)
            return tf.data.Dataset.from_tensor_slices((images, captions))

        pairs = train.flat_map(per_caption)
        if cfg.cache:
            pairs = pairs.cache()
        num_train = len(texts)
        padding = (
            {"images": tf.constant(0, tf.uint8), "target_in": PAD_ID},
            PAD_ID,
        )
        # Batches as a pure function of (seed, epoch): exact per-replica
        # sharding under tf.distribute, identical batches after a resume.
        stream = data_lib.TrainStream(
            pairs,
            num_train,
            cfg.batch_size,
            seed=config.seed,
            shuffle_buffer=cfg.shuffle_buffer,
            prepare=lambda pair, _: encode(*pair),
            batch=lambda ds, size: ds.padded_batch(
                size, padding_values=padding, drop_remainder=True
            ),
        )
        stream.check()

        validation = None
        if cfg.validation_split:
            val, _ = self._examples(
                builder, cfg.validation_split, cfg, shape, cfg.max_eval_examples
            )
            val = val.flat_map(per_caption).map(
                encode, num_parallel_calls=AUTOTUNE
            )
            if cfg.cache:
                val = val.cache()
            validation = data_lib.with_known_cardinality(
                val.padded_batch(cfg.eval_batch_size, padding_values=padding)
            ).prefetch(AUTOTUNE)

        test, num_test = self._examples(
            builder, cfg.test_split, cfg, shape, cfg.max_eval_examples
        )
        if num_test == 0:
            raise UserError(f"The test split {cfg.test_split!r} is empty.")
        test = test.padded_batch(
            cfg.eval_batch_size,
            padding_values=(tf.constant(0, tf.uint8), "", -1.0),
        ).prefetch(AUTOTUNE)
        return CaptioningData(
            train=stream.epoch(0).prefetch(AUTOTUNE),
            train_stream=stream,
            validation=validation,
            test=test,
            steps_per_epoch=stream.steps_per_epoch,
            info={
                "dataset": builder.info.full_name,
                "image_shape": list(shape),
                "vocab_size": len(vocabulary),
                "num_train_images": num_images,
                "num_train_examples": num_train,
                **data_lib.split_names(cfg),
                "num_test_examples": num_test,
            },
            vocabulary=vocabulary,
            image_shape=shape,
        )

    def ablation_models(self, config):
        # Soft, hard (REINFORCE, Gumbel) and Transformer, each with its
        # digit_scenes settings (`ablate digit_scenes_transformer`).
        from experiments.configs.captioning import CAPTIONERS

        return list(CAPTIONERS)

    def ablation_figures(self, config, run_dirs, out, data_dir):
        # The first seed's models side by side on the same test images.
        from experiments.caption_overlays import compare_captioners

        if not (config.eval.plots and config.eval.attention_maps):
            return []
        runs = [(model, folders[0]) for model, folders in run_dirs.items()]
        count = min(config.eval.attention_maps, 4)
        return compare_captioners(
            runs, config, os.path.join(out, "overlays"), count, data_dir
        )

    # --- Model ----------------------------------------------------------
    def model_defaults(self, config, data):
        return {
            "vocab_size": data.info["vocab_size"],
            "input_shape": tuple(data.image_shape),
            "max_caption_length": config.data.max_caption_length,
            "seed": config.seed,
        }

    # --- Decoding -------------------------------------------------------
    def make_caption_fn(self, model, config, method, image_shape):
        ev = config.eval

        @tf.function(
            input_signature=[tf.TensorSpec([None, *image_shape], tf.uint8)]
        )
        def caption(images):
            return model.generate(
                images,
                method=method,
                max_length=config.data.max_caption_length,
                beam_width=ev.beam_width,
                length_penalty=ev.length_penalty,
            )

        return caption

    def caption_split(self, model, data, config, method):
        """Decodes the test split: per image its words, attention, refs."""
        fn = self.make_caption_fn(model, config, method, data.image_shape)
        vocabulary = np.asarray(data.vocabulary)
        results = []
        elapsed = 0.0
        for images, references, boxes in data.test:
            start = time.perf_counter()
            out = fn(images).best()
            tokens = out.tokens.numpy()
            attention = out.attention.numpy()
            elapsed += time.perf_counter() - start
            images = images.numpy()
            references = references.numpy()
            boxes = boxes.numpy()
            for i in range(len(tokens)):
                ids = tokens[i].tolist()
                if END_ID in ids:
                    ids = ids[: ids.index(END_ID)]
                ids = [t for t in ids if t != PAD_ID]
                refs = [r.decode("utf-8") for r in references[i] if r]
                box = boxes[i]
                results.append(
                    {
                        "words": [str(w) for w in vocabulary[ids]],
                        "attention": attention[i],
                        "references": refs,
                        "boxes": box[box[:, 0] >= 0],
                        "image": images[i],
                    }
                )
        return results, elapsed

    # --- Evaluation -----------------------------------------------------
    def evaluate(self, model, data, config, run_dir):
        grid = tuple(model.feature_grid)
        metrics = {"feature_grid": list(grid)}
        outputs = {}
        for method in SEARCHES:
            results, elapsed = self.caption_split(model, data, config, method)
            outputs[method] = results
            hypotheses = [" ".join(r["words"]) for r in results]
            most = max(len(r["references"]) for r in results)
            streams = [
                [
                    r["references"][k] if k < len(r["references"]) else None
                    for r in results
                ]
                for k in range(most)
            ]
            for n in range(1, 5):
                bleu = sacrebleu.BLEU(max_ngram_order=n)
                score = bleu.corpus_score(hypotheses, streams)
                metrics[f"bleu{n}_{method}"] = round(float(score.score), 2)
            metrics["bleu_signature"] = str(bleu.get_signature())
            exact = [h in r["references"] for h, r in zip(hypotheses, results)]
            metrics[f"exact_{method}"] = round(float(np.mean(exact)), 4)
            metrics[f"{method}_images_per_s"] = round(
                len(results) / max(elapsed, 1e-9), 1
            )
            masses, correct_masses = [], []
            for r in results:
                if not len(r["boxes"]):
                    continue
                found = attention_in_boxes(
                    r["attention"], r["boxes"], len(r["words"]), grid
                )
                masses += found
                truth = r["references"][0].split()
                correct_masses += [
                    m
                    for j, m in enumerate(found)
                    if j < len(truth) and r["words"][j] == truth[j]
                ]
            if masses:
                metrics[f"attention_in_box_{method}"] = round(
                    float(np.mean(masses)), 4
                )
                metrics[f"attention_in_box_correct_words_{method}"] = round(
                    float(np.mean(correct_masses)) if correct_masses else 0.0,
                    4,
                )
        boxes = [b for r in outputs["greedy"] for b in r["boxes"]]
        if boxes:
            # Mass a uniform attention map would put inside the boxes.
            areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
            metrics["attention_in_box_uniform"] = round(
                float(np.mean(areas)), 4
            )
        metrics["num_test_examples"] = len(outputs["greedy"])
        metrics["beam_width"] = config.eval.beam_width

        self._write_samples(outputs, config, data, run_dir)
        if config.eval.plots and config.eval.attention_maps:
            paths = self._plot_attention(
                outputs["greedy"], config, run_dir, grid
            )
            metrics["attention_plots"] = [
                os.path.relpath(p, run_dir) for p in paths
            ]
        return metrics

    def _write_samples(self, outputs, config, data, run_dir):
        count = min(config.eval.samples, len(outputs["greedy"]))
        samples = [
            {
                "references": outputs["greedy"][i]["references"],
                "greedy": " ".join(outputs["greedy"][i]["words"]),
                "beam": " ".join(outputs["beam"][i]["words"]),
            }
            for i in range(count)
        ]
        fields = [("reference", "references")]
        fields += [(method, method) for method in SEARCHES]
        self.write_samples(samples, fields, data, config, run_dir)

    def _plot_attention(self, results, config, run_dir, grid):
        count = min(config.eval.attention_maps, len(results))
        # A mistake or two first (they show where attention went wrong).
        wrong = [
            i
            for i, r in enumerate(results)
            if " ".join(r["words"]) not in r["references"]
        ]
        chosen = wrong[: max(1, count // 3)]
        chosen += [i for i in range(len(results)) if i not in chosen]
        folder = os.path.join(run_dir, "plots")
        os.makedirs(folder, exist_ok=True)
        paths = []
        for n, i in enumerate(chosen[:count]):
            r = results[i]
            words = r["words"] + ["[END]"]
            maps = r["attention"][: len(words)].reshape(-1, *grid)
            paths.append(
                plots.caption_attention(
                    r["image"],
                    words,
                    maps,
                    os.path.join(folder, f"caption_attention_{n}.png"),
                    boxes=r["boxes"],
                    title=(
                        f"{config.model.name}: {' '.join(r['words'])!r} "
                        f"(reference {r['references'][0]!r})"
                    ),
                )
            )
        return paths

    def summary_line(self, metrics):
        line = (
            f"Exact captions greedy {metrics['exact_greedy']:.2%}, beam "
            f"{metrics['exact_beam']:.2%}; BLEU-4 {metrics['bleu4_greedy']:.2f}"
            f" / {metrics['bleu4_beam']:.2f} on "
            f"{metrics['num_test_examples']} test images"
        )
        if "attention_in_box_greedy" in metrics:
            line += (
                "; attention mass in the named digit's box "
                f"{metrics['attention_in_box_greedy']:.3f} (uniform "
                f"{metrics['attention_in_box_uniform']:.3f})"
            )
        return line

    # --- Export ---------------------------------------------------------
    def export(self, model, data, config, path):
        return export_captioner(
            model,
            data.vocabulary,
            path,
            max_caption_length=config.data.max_caption_length,
            beam_width=config.eval.beam_width,
            length_penalty=config.eval.length_penalty,
            search=config.eval.export_search,
        )


def make_serving_fn(
    model,
    vocabulary,
    method,
    max_caption_length,
    beam_width=3,
    length_penalty=0.0,
):
    """`tf.function`: uint8 images `[B, H, W, C]` -> dict of captions.

    Images of another size are resized (bilinear, antialiased) to the
    model's; one channel is tiled to three and three are converted to grey
    as the model needs; any other channel count fails with a clear
    `InvalidArgumentError`. An empty batch gives empty outputs.
    """
    height, width, channels = (int(d) for d in model.image_shape)
    rows, cols = model.feature_grid
    words = tf.constant(list(vocabulary))

    # No autograph: the control flow is explicit (tf.cond, the searches'
    # tf.while_loop).
    @tf.function(
        input_signature=[tf.TensorSpec(None, tf.uint8, name="images")],
        autograph=False,
    )
    def serve(images):
        images = export_lib.serving_input(
            images,
            [None, None, None, None],
            "`images`: a uint8 batch [batch, height, width, 1 or 3] of "
            "images at least 1x1",
            nonempty_axes=(1, 2),
        )
        batch = tf.shape(images)[0]
        given = tf.shape(images)[3]
        images = export_lib.pass_if(
            tf.logical_or(tf.equal(given, 1), tf.equal(given, 3)),
            images,
            [
                f"Bad request: images must have 1 or 3 channels (the model "
                f"reads {channels}). Received shape:",
                export_lib.shape_text(images),
            ],
        )
        images = tf.ensure_shape(images, [None, None, None, None])
        # An empty batch runs one blank image (the recurrent decoder
        # cannot step over zero examples); outputs are cut back below.
        images = tf.cond(
            batch > 0,
            lambda: images,
            lambda: tf.zeros([1, height, width, given], tf.uint8),
        )
        pixels = tf.cast(images, tf.float32)
        if channels == 3:
            pixels = tf.cond(
                tf.equal(given, 1),
                lambda: tf.tile(pixels, [1, 1, 1, 3]),
                lambda: pixels,
            )
        else:
            pixels = tf.cond(
                tf.equal(given, 3),
                lambda: tf.reduce_sum(
                    pixels * tf.constant([0.2989, 0.587, 0.114]),
                    axis=-1,
                    keepdims=True,
                ),
                lambda: pixels[..., :1],
            )
        size = tf.shape(images)[1:3]
        resized = tf.reduce_any(tf.not_equal(size, [height, width]))
        pixels = tf.cond(
            resized,
            lambda: tf.image.resize(pixels, [height, width], antialias=True),
            lambda: pixels,
        )
        pixels = tf.ensure_shape(pixels, [None, height, width, channels])
        pixels = tf.cast(tf.round(tf.clip_by_value(pixels, 0, 255)), tf.uint8)
        result = model.generate(
            pixels,
            method=method,
            max_length=max_caption_length,
            beam_width=beam_width,
            length_penalty=length_penalty,
        ).best()
        tokens = result.tokens
        is_word = tokens > END_ID
        token_text = tf.where(is_word, tf.gather(words, tokens), "")
        caption = tf.strings.reduce_join(
            tf.ragged.boolean_mask(token_text, is_word), axis=-1, separator=" "
        )
        length = tf.shape(tokens)[1]
        outputs = {
            # [B] the caption.
            "caption": caption,
            # [B, L] its words ("" after the last word).
            "words": token_text,
            # [B, L, rows, cols] attention map of each produced token.
            "attention": tf.reshape(result.attention, [-1, length, rows, cols]),
            # [B] log P / length penalty of the caption.
            "score": result.scores,
            # [B] whether the image was resized to the model's size.
            "resized": tf.fill(tf.shape(tokens)[:1], resized),
        }
        return {key: value[:batch] for key, value in outputs.items()}

    return serve


def export_captioner(
    model,
    vocabulary,
    path,
    max_caption_length,
    beam_width=3,
    length_penalty=0.0,
    search="beam",
):
    """Exports an images-in/captions-out SavedModel atomically.

    `serving_default` uses `search` (`"beam"` or `"greedy"`); the other
    search is a second signature named after it. Both take `images`, a
    uint8 `[B, H, W, C]` batch.
    """

    def serving_fn(method):
        return make_serving_fn(
            model,
            vocabulary,
            method,
            max_caption_length,
            beam_width,
            length_penalty,
        )

    return export_searches(path, model, serving_fn, search)


TASK = CaptioningTask()
