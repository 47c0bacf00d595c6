"""Translation task: TFDS sentence pairs -> translator -> BLEU -> SavedModel.

Data: any TFDS dataset with a source and a target string feature (official
`ted_hrlr_translate/pt_to_en`, `wmt14_translate/de-en`, the offline
`ding_de_en`, or a prepared dataset directory), keys `data.source_key` /
`data.target_key`. Each side gets a WordPiece vocabulary learnt from the
training split (HuggingFace `tokenizers`' learner; cached, so a resumed run
gets the same ids) and a core-TensorFlow tokeniser (`experiments.wordpiece`).
Pipeline: tokenise -> add [START]/[END] -> drop over-long training pairs
-> cache -> per-epoch seeded shuffle -> length-sorted windows -> padded
batches (`experiments.data.TrainStream`) -> `({"source", "target_in"},
target_out)`.

Evaluation: greedy and beam search on the test split, corpus BLEU and chrF
with sacrebleu on detokenised text (against references normalised like the
training text: lower-cased, apostrophes unified), sample translations,
alignment heatmaps and decoding speed.

Export: a `tf.string` batch of source sentences in -> translations out,
with the tokens, the alignment of the best hypothesis, its score and a
truncation flag; tokenisers and search are inside the graph and need only
core TensorFlow to load.
"""

import dataclasses
import functools
import hashlib
import json
import os
import time

import numpy as np
import sacrebleu
import tensorflow as tf

from experiments import alignment
from experiments import atomic
from experiments import data as data_lib
from experiments import export as export_lib
from experiments import plots
from experiments import wordpiece
from experiments.configs.seq2seq import SEARCHES
from experiments.errors import UserError
from experiments.tasks.base import TaskData
from experiments.tasks.base import check_split_size
from experiments.tasks.seq2seq import Search
from experiments.tasks.seq2seq import Seq2SeqTask
from experiments.tasks.seq2seq import export_searches
from experiments.tasks.seq2seq import serve_nonempty
from zoo.tokens import END_ID
from zoo.tokens import PAD_ID
from zoo.tokens import RESERVED_TOKENS
from zoo.tokens import START_ID

AUTOTUNE = tf.data.AUTOTUNE
# Padding values of a `({"source", "target_in"}, target_out)` batch.
PADDING = ({"source": PAD_ID, "target_in": PAD_ID}, PAD_ID)


class TranslationData(TaskData):
    """`TaskData` plus the two tokenisers and the raw training pairs."""

    def __init__(
        self,
        *args,
        source_tokenizer,
        target_tokenizer,
        train_pairs=None,
        validation_text=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        # (source, target) string pairs of the training split.
        self.train_pairs = train_pairs
        # Batched (source, target) strings of the validation split (its
        # first data.max_eval_examples), decoded to choose search settings.
        self.validation_text = validation_text


def cache_root():
    """Folder of cached vocabularies (`$ATTENTION_ZOO_CACHE` overrides)."""
    return os.environ.get(
        "ATTENTION_ZOO_CACHE",
        os.path.join(os.path.expanduser("~"), ".cache", "attention_zoo"),
    )


def _vocabulary(builder, cfg, key, texts):
    """The WordPiece vocabulary of one side (or of both, `key` "de+en"),
    learnt once and cached."""
    identity = {
        "dataset": builder.info.full_name,
        "split": cfg.train_split,
        "max_train_examples": cfg.max_train_examples,
        "key": key,
        "vocab_size": cfg.vocab_size,
        "lowercase": cfg.lowercase,
        "tokenizer": wordpiece.LEARNER,
    }
    digest = hashlib.sha256(
        json.dumps(identity, sort_keys=True).encode()
    ).hexdigest()[:16]
    path = os.path.join(cache_root(), "vocab", f"{key}-{digest}.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read().split("\n")
    print(
        f"Learning a {cfg.vocab_size}-token WordPiece vocabulary for "
        f"{key!r} (once; cached in {path})...",
        flush=True,
    )
    vocab = wordpiece.learn_vocabulary(
        texts, vocab_size=cfg.vocab_size, lowercase=cfg.lowercase
    )
    atomic.write_text(path, "\n".join(vocab))
    return vocab


def add_start_end(ids, max_length):
    """`[START] ids [END]` of ragged ids, truncated to `max_length` tokens.

    Returns the ragged int32 ids and a boolean `[B]`: whether the sentence
    was truncated (its last tokens dropped, `[END]` kept).
    """
    ids = tf.cast(ids, tf.int32)
    keep = max_length - 2
    truncated = ids.row_lengths() > keep
    ids = ids[:, :keep]
    batch = ids.nrows()
    start = tf.fill([batch, 1], START_ID)
    end = tf.fill([batch, 1], END_ID)
    return tf.concat([start, ids, end], axis=1), truncated


def encode_sources(tokenizer, sentences, max_length):
    """Source strings `[B]` -> dense ids `[B, S]` (0-padded), truncated."""
    ragged, truncated = add_start_end(tokenizer.tokenize(sentences), max_length)
    return ragged.to_tensor(PAD_ID), truncated


def normalize_references(texts, lowercase):
    """References as the tokeniser sees them: case, apostrophes, spaces."""
    normalized = wordpiece.normalize(tf.constant(list(texts)), lowercase)
    return [
        " ".join(t.decode("utf-8").split()) for t in normalized.numpy().tolist()
    ]


class TranslationTask(Seq2SeqTask):
    """Trains and evaluates zoo translators on TFDS sentence pairs."""

    name = "translation"
    primary_metric = "bleu_beam"
    comparison_columns = (
        ("BLEU greedy", "bleu_greedy", ".2f"),
        ("BLEU beam", "bleu_beam", ".2f"),
        ("chrF greedy", "chrf_greedy", ".1f"),
        ("chrF beam", "chrf_beam", ".1f"),
        ("IBM2 agreement", "alignment_agreement_ibm2", ".2f"),
        ("parameters", "num_parameters", ","),
        ("train time (s)", "train_time_s_all_epochs", ".0f"),
        ("greedy sent/s", "greedy_sentences_per_s", ".1f"),
        ("beam sent/s", "beam_sentences_per_s", ".1f"),
    )
    length_keys = ("max_source_length", "max_target_length")
    sample_noun = "translations"

    def check_data_settings(self, config):
        if config.data.vocab_size < 10:
            raise UserError(
                "data.vocab_size must be >= 10. Received: "
                f"data.vocab_size={config.data.vocab_size}"
            )
        choices = config.eval.length_penalty_choices
        if any(
            not isinstance(c, (int, float)) or isinstance(c, bool) or c < 0
            for c in choices
        ):
            raise UserError(
                "eval.length_penalty_choices must be numbers >= 0. "
                f"Received: eval.length_penalty_choices={choices}"
            )

    # --- Data -----------------------------------------------------------
    def _pairs(self, builder, split, cfg, max_examples):
        ds, count = data_lib.open_split(builder, split, max_examples)
        source_key, target_key = cfg.source_key, cfg.target_key

        def pick(example):
            return example[source_key], example[target_key]

        return ds.map(pick, num_parallel_calls=AUTOTUNE), count

    def _tokenized(self, pairs, cfg, tokenizers):
        """`(source ids, target ids)` with [START]/[END], long pairs dropped."""
        source_tok, target_tok = tokenizers

        def tokenize(source, target):
            src, _ = add_start_end(source_tok.tokenize(source), 1 << 30)
            tgt, _ = add_start_end(target_tok.tokenize(target), 1 << 30)
            return src, tgt

        def fits(src, tgt):
            return (tf.shape(src)[0] <= cfg.max_source_length) & (
                tf.shape(tgt)[0] <= cfg.max_target_length
            )

        return (
            pairs.batch(1024)
            .map(tokenize, num_parallel_calls=AUTOTUNE)
            .unbatch()
            .filter(fits)
        )

    def _batched(self, ds, cfg, batch_size, bucket):
        def split_target(src, tgt):
            return {"source": src, "target_in": tgt[:-1]}, tgt[1:]

        ds = ds.map(split_target, num_parallel_calls=AUTOTUNE)
        if bucket:
            longest = max(cfg.max_source_length, cfg.max_target_length)
            bounds = [b for b in (8, 12, 16, 20, 24, 32, 48, 64) if b < longest]
            ds = ds.bucket_by_sequence_length(
                lambda x, y: tf.maximum(
                    tf.shape(x["source"])[0], tf.shape(y)[0]
                ),
                bucket_boundaries=bounds,
                bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
                padding_values=PADDING,
            )
        else:
            ds = ds.padded_batch(
                batch_size,
                padding_values=PADDING,
            )
        return ds.prefetch(AUTOTUNE)

    def _stream(self, pairs, num_pairs, cfg, seed):
        """Training batches as a pure function of (seed, epoch): exact
        per-replica sharding under tf.distribute, identical batches after a
        resume. `data.bucket` sorts windows of 16 global batches by length
        (`data_lib.sort_windows`) instead of `bucket_by_sequence_length`,
        whose batches depend on the iterator's history."""

        def split_target(pair, _):
            src, tgt = pair
            return {"source": src, "target_in": tgt[:-1]}, tgt[1:]

        def padded(ds, batch_size):
            return ds.padded_batch(
                batch_size,
                padding_values=PADDING,
                drop_remainder=True,
            )

        group = None
        if cfg.bucket:
            group = data_lib.sort_windows(
                cfg.batch_size,
                16,
                lambda pair: tf.maximum(
                    tf.shape(pair[0])[0], tf.shape(pair[1])[0]
                ),
            )
        return data_lib.TrainStream(
            pairs,
            num_pairs,
            cfg.batch_size,
            seed=seed,
            shuffle_buffer=cfg.shuffle_buffer,
            prepare=split_target,
            batch=padded,
            group=group,
        )

    def load_data(self, config, data_dir, strategy):
        cfg = config.data
        builder = data_lib.load_builder(cfg.name, data_dir, cfg.download)
        cfg = data_lib.resolve_splits(builder, cfg)
        data_lib.check_features(
            builder,
            {
                "data.source_key": cfg.source_key,
                "data.target_key": cfg.target_key,
            },
        )
        train_pairs, num_pairs = self._pairs(
            builder, cfg.train_split, cfg, cfg.max_train_examples
        )
        check_split_size(num_pairs, cfg.train_split, "training")
        sides = [
            train_pairs.map(lambda s, t: s),
            train_pairs.map(lambda s, t: t),
        ]
        if cfg.shared_vocabulary:
            joint = _vocabulary(
                builder,
                cfg,
                f"{cfg.source_key}+{cfg.target_key}",
                sides[0].concatenate(sides[1]),
            )
            vocabs = [joint, joint]
        else:
            vocabs = [
                _vocabulary(builder, cfg, key, texts)
                for key, texts in zip((cfg.source_key, cfg.target_key), sides)
            ]
        tokenizers = [
            wordpiece.WordPieceTokenizer(v, lowercase=cfg.lowercase)
            for v in vocabs
        ]
        for side, vocab in zip(("source", "target"), vocabs):
            if vocab[: len(RESERVED_TOKENS)] != list(RESERVED_TOKENS):
                raise UserError(f"The {side} vocabulary lacks reserved tokens")

        train = self._tokenized(train_pairs, cfg, tokenizers)
        if cfg.cache:
            train = train.cache()
        num_train = int(train.reduce(0, lambda n, _: n + 1))
        if num_train == 0:
            raise UserError(
                "No training pair fits data.max_source_length / "
                "data.max_target_length."
            )
        stream = self._stream(train, num_train, cfg, config.seed)
        stream.check()

        validation = validation_text = None
        if cfg.validation_split:
            pairs, _ = self._pairs(
                builder, cfg.validation_split, cfg, cfg.max_eval_examples
            )
            validation_text = pairs.batch(cfg.eval_batch_size)
            validation = self._tokenized(pairs, cfg, tokenizers)
            if cfg.cache:
                validation = validation.cache()
            validation = data_lib.with_known_cardinality(
                self._batched(validation, cfg, cfg.eval_batch_size, False)
            )

        test_pairs, num_test = self._pairs(
            builder, cfg.test_split, cfg, cfg.max_eval_examples
        )
        check_split_size(num_test, cfg.test_split, "test")
        test = test_pairs.batch(cfg.eval_batch_size).prefetch(AUTOTUNE)
        return TranslationData.from_stream(
            stream,
            validation=validation,
            test=test,
            info={
                "dataset": builder.info.full_name,
                "source_key": cfg.source_key,
                "target_key": cfg.target_key,
                "source_vocab_size": len(vocabs[0]),
                "target_vocab_size": len(vocabs[1]),
                "num_train_pairs": num_pairs,
                "num_train_examples": num_train,
                **data_lib.split_names(cfg),
                "num_test_examples": num_test,
            },
            source_tokenizer=tokenizers[0],
            target_tokenizer=tokenizers[1],
            train_pairs=train_pairs,
            validation_text=validation_text,
        )

    # --- Model ----------------------------------------------------------
    def model_defaults(self, config, data):
        return {
            "source_vocab_size": data.info["source_vocab_size"],
            "target_vocab_size": data.info["target_vocab_size"],
            "max_target_length": config.data.max_target_length,
        }

    # --- Decoding -------------------------------------------------------
    def make_translate_fn(self, model, config, method):
        """A compiled `(source ids [B, S], length penalty []) ->
        DecodeResult` function (the penalty is an input, so one trace
        serves every penalty tried on validation)."""
        ev = config.eval
        max_length = config.data.max_target_length

        def translate(source_ids, length_penalty):
            return model.generate(
                source_ids,
                method=method,
                max_length=max_length,
                beam_width=ev.beam_width,
                length_penalty=length_penalty,
            )

        if not getattr(ev, "compiled", True):
            return translate
        return tf.function(
            translate,
            jit_compile=bool(ev.jit_compile),
            input_signature=[
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([], tf.float32),
            ],
        )

    def translate_split(
        self, model, data, config, method, split=None, translate=None
    ):
        """Decodes a split (default: the test split) of batched string pairs.

        `translate` is a function of `make_translate_fn` to reuse (one is
        made and traced otherwise); `config.eval.length_penalty` is the
        penalty it decodes with.

        Returns the sources, references, translations, per-sentence
        outputs (ids, attention), the decoding time and the tokens made.
        """
        split = data.test if split is None else split
        source_tok = data.source_tokenizer
        target_tok = data.target_tokenizer
        penalty = tf.constant(config.eval.length_penalty, tf.float32)
        if translate is None:
            translate = self.make_translate_fn(model, config, method)
            for batch_sources, _ in split.take(1):
                # Trace (and compile) once, so the timing is of decoding.
                ids, _ = encode_sources(
                    source_tok, batch_sources, config.data.max_source_length
                )
                translate(ids, penalty)
        sources, references, hypotheses, outputs = [], [], [], []
        elapsed, tokens = 0.0, 0
        for batch_sources, batch_targets in split:
            ids, truncated = encode_sources(
                source_tok, batch_sources, config.data.max_source_length
            )
            start = time.perf_counter()
            result = translate(ids, penalty).best()
            best = result.tokens.numpy()
            lengths = result.lengths.numpy()
            elapsed += time.perf_counter() - start
            tokens += int(np.sum(lengths))
            text = target_tok.detokenize(best).numpy()
            attention = result.attention
            if attention is not None:
                attention = attention.numpy()
            ids, truncated = ids.numpy(), truncated.numpy()
            batch_sources = batch_sources.numpy()
            batch_targets = batch_targets.numpy()
            for i in range(len(text)):
                sources.append(batch_sources[i].decode("utf-8"))
                references.append(batch_targets[i].decode("utf-8"))
                hypotheses.append(text[i].decode("utf-8"))
                outputs.append(
                    {
                        "source_ids": ids[i],
                        "ids": best[i],
                        "length": int(lengths[i]),
                        "attention": None
                        if attention is None
                        else attention[i],
                        "truncated": bool(truncated[i]),
                    }
                )
        return sources, references, hypotheses, outputs, elapsed, tokens

    # --- Evaluation -----------------------------------------------------
    def choose_on_validation(self, model, data, config):
        """The beam search's length penalty with the best validation BLEU."""
        choices = config.eval.length_penalty_choices
        if not choices:
            return config, {}
        if data.validation_text is None:
            return config, {
                "length_penalty_note": "no validation split: "
                "eval.length_penalty used as set"
            }
        bleu = {}
        translate = self.make_translate_fn(model, config, "beam")
        for penalty in choices:
            candidate = _with_length_penalty(config, penalty)
            _, references, hypotheses, *_ = self.translate_split(
                model,
                data,
                candidate,
                "beam",
                split=data.validation_text,
                translate=translate,
            )
            bleu[penalty], _, _ = corpus_scores(
                hypotheses, references, config.data.lowercase
            )
        best = max(choices, key=lambda penalty: bleu[penalty].score)
        return _with_length_penalty(config, best), {
            "length_penalty_validation_bleu": {
                str(penalty): round(float(score.score), 2)
                for penalty, score in bleu.items()
            },
        }

    def evaluate(self, model, data, config, run_dir):
        results = {}
        translations = {}
        for method in SEARCHES:
            (
                sources,
                references,
                hypotheses,
                outputs,
                elapsed,
                tokens,
            ) = self.translate_split(model, data, config, method)
            bleu, chrf, signatures = corpus_scores(
                hypotheses, references, config.data.lowercase
            )
            results[f"bleu_{method}"] = round(float(bleu.score), 2)
            results[f"chrf_{method}"] = round(float(chrf.score), 2)
            results[f"{method}_sentences_per_s"] = round(
                len(hypotheses) / max(elapsed, 1e-9), 1
            )
            results[f"{method}_tokens_per_s"] = round(
                tokens / max(elapsed, 1e-9), 1
            )
            results.update(signatures)
            translations[method] = (hypotheses, outputs)
        results["num_test_examples"] = len(sources)
        results["num_truncated_sources"] = sum(
            o["truncated"] for o in translations["greedy"][1]
        )
        results["beam_width"] = config.eval.beam_width
        results["length_penalty"] = config.eval.length_penalty

        count = min(config.eval.samples, len(sources))
        samples = [
            {
                "source": sources[i],
                "reference": references[i],
                "greedy": translations["greedy"][0][i],
                "beam": translations["beam"][0][i],
            }
            for i in range(count)
        ]
        fields = [(key, key) for key in ("source", "reference", *SEARCHES)]
        self.write_samples(samples, fields, data, config, run_dir)

        if config.eval.alignment_pairs and data.train_pairs is not None:
            results.update(
                self.alignment_agreement(data, config, translations["beam"][1])
            )
        if config.eval.plots and config.eval.attention_maps:
            path = self._plot_alignments(
                data, config, run_dir, sources, translations["beam"][1]
            )
            if path:
                results["alignment_plot"] = os.path.relpath(path, run_dir)
        return results

    def word_alignments(self, data, outputs):
        """Word-level `(matrix, source words, target words)` per output."""
        source_tok, target_tok = data.source_tokenizer, data.target_tokenizer
        examples = []
        for out in outputs:
            source_ids = [t for t in out["source_ids"].tolist() if t != PAD_ID]
            target_ids = out["ids"][: out["length"]].tolist()
            source = [
                t.decode("utf-8")
                for t in source_tok.id_to_token(source_ids).numpy()
            ]
            target = [
                t.decode("utf-8")
                for t in target_tok.id_to_token(target_ids).numpy()
            ]
            weights = out["attention"][: len(target), : len(source)]
            examples.append(alignment.word_alignment(weights, source, target))
        return examples

    def alignment_agreement(self, data, config, outputs):
        """Attention argmax vs IBM Model 2 on the test translations."""
        if outputs[0]["attention"] is None:
            return {}  # a model without attention
        lowercase = config.data.lowercase
        bitext = []
        for sources, targets in data.train_pairs.take(
            config.eval.alignment_pairs
        ).batch(1024):
            words = [
                wordpiece.split_words(side, lowercase).to_list()
                for side in (sources, targets)
            ]
            bitext.extend(
                (
                    [w.decode("utf-8") for w in source],
                    [w.decode("utf-8") for w in target],
                )
                for source, target in zip(*words)
            )
        ibm2 = alignment.train_ibm2(bitext)
        agreement, links = alignment.ibm2_agreement(
            ibm2, self.word_alignments(data, outputs)
        )
        return {
            "alignment_agreement_ibm2": round(float(agreement), 4),
            "alignment_links_ibm2": links,
            "alignment_train_pairs_ibm2": len(bitext),
        }

    def _plot_alignments(self, data, config, run_dir, sources, outputs):
        if outputs[0]["attention"] is None:
            return None  # a model without attention
        # Short, untruncated sentences read best.
        order = sorted(
            range(len(outputs)),
            key=lambda i: (outputs[i]["truncated"], len(sources[i]) > 80, i),
        )[: config.eval.attention_maps]
        words = self.word_alignments(data, [outputs[i] for i in order])
        alignments = [
            (matrix, source, target, sources[i])
            for (matrix, source, target), i in zip(words, order)
        ]
        folder = os.path.join(run_dir, "plots")
        os.makedirs(folder, exist_ok=True)
        return plots.alignment_heatmaps(
            alignments,
            os.path.join(folder, "alignments.png"),
            title=f"{config.model.name}: attention over words (beam search)",
        )

    def summary_line(self, metrics):
        return (
            f"BLEU greedy {metrics['bleu_greedy']:.2f}, beam "
            f"{metrics['bleu_beam']:.2f} (chrF {metrics['chrf_greedy']:.1f} / "
            f"{metrics['chrf_beam']:.1f}) on {metrics['num_test_examples']} "
            "test sentences"
        )

    # --- Export ---------------------------------------------------------
    def export(self, model, data, config, path):
        return export_translator(
            model,
            data.source_tokenizer,
            data.target_tokenizer,
            path,
            max_source_length=config.data.max_source_length,
            max_target_length=config.data.max_target_length,
            beam_width=config.eval.beam_width,
            length_penalty=config.eval.length_penalty,
            search=config.eval.export_search,
        )


def corpus_scores(hypotheses, references, lowercase):
    """sacrebleu's corpus BLEU and chrF against normalised references.

    Returns `(bleu, chrf, signatures)`: the two score objects and
    `{"bleu_signature": ..., "chrf_signature": ...}` (sacrebleu's strings
    that say how they were computed).
    """
    refs = normalize_references(references, lowercase)
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    return (
        bleu_metric.corpus_score(hypotheses, [refs]),
        chrf_metric.corpus_score(hypotheses, [refs]),
        {
            "bleu_signature": str(bleu_metric.get_signature()),
            "chrf_signature": str(chrf_metric.get_signature()),
        },
    )


def _with_length_penalty(config, penalty):
    """A copy of `config` whose beam search uses `penalty`."""
    return dataclasses.replace(
        config,
        eval=dataclasses.replace(config.eval, length_penalty=float(penalty)),
    )


def make_serving_fn(
    model, source_tokenizer, target_tokenizer, max_source_length, search
):
    """`tf.function`: source strings `[B]` -> dict of translation outputs.

    Sources are cut to `max_source_length` tokens; `search` is the
    `Search` the translations are decoded with. An empty batch gives empty
    outputs.
    """
    with_attention = getattr(model, "has_attention", True)

    @tf.function(
        input_signature=[tf.TensorSpec(None, tf.string, name="sentences")]
    )
    def serve(sentences):
        sentences = export_lib.serving_input(
            sentences, [None], "`sentences`: a 1-D tf.string batch"
        )
        return serve_nonempty(sentences, tf.constant([""]), translate)

    def translate(sentences):
        ids, truncated = encode_sources(
            source_tokenizer, sentences, max_source_length
        )
        # [B] sources without a token (empty, only spaces): translated to
        # "" with score 0, not to whatever the decoder says about nothing.
        empty = tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1) <= 2
        result = search.best(model, ids)
        lengths = tf.where(empty, 0, result.lengths)
        best = tf.where(empty[:, None], PAD_ID, result.tokens)
        score = tf.where(empty, 0.0, result.scores)
        target_tokens = target_tokenizer.id_to_token(
            tf.RaggedTensor.from_tensor(best, lengths=lengths)
        ).to_tensor("")
        outputs = {
            # [B] the translations (detokenised text; "" for an empty source).
            "translation": target_tokenizer.detokenize(best),
            # [B, L] WordPiece tokens of the translation ("" = padding).
            "target_tokens": target_tokens,
            # [B, S] WordPiece tokens the model read ("" = padding).
            "source_tokens": tf.where(
                ids == PAD_ID, "", source_tokenizer.id_to_token(ids)
            ),
            # [B] log P / length penalty of the translation.
            "score": score,
            # [B] True where the source was cut to max_source_length.
            "source_truncated": truncated,
        }
        if with_attention and result.attention is not None:
            # [B, L, S] attention of each target token over the source.
            outputs["attention"] = tf.where(
                empty[:, None, None], 0.0, result.attention
            )
        return outputs

    return serve


def export_translator(
    model,
    source_tokenizer,
    target_tokenizer,
    path,
    max_source_length,
    max_target_length,
    beam_width=4,
    length_penalty=0.6,
    search="beam",
):
    """Exports a string-in/string-out SavedModel atomically.

    `serving_default` uses `search` (`"beam"` or `"greedy"`); the other
    search is the second signature (named after it). Both take
    `sentences`, a `tf.string` `[B]`.
    """
    return export_searches(
        path,
        model,
        functools.partial(
            make_serving_fn,
            model,
            source_tokenizer,
            target_tokenizer,
            max_source_length,
        ),
        Search(search, max_target_length, beam_width, length_penalty),
        track=(source_tokenizer, target_tokenizer),
    )


TASK = TranslationTask()
