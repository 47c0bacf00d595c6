"""Translation configs and named experiments (gettext and Ding de->en, TED
pt->en, WMT'14).

The `gettext_*` experiments (the offline default) train on German->English
software messages from Debian's gettext catalogs (`gettext_de_en`), where
small models translate readably; `ding_phrases_*` on the Ding sentences
plus its phrase pairs.

The `ding_*` experiments train each translator on the offline Ding
German->English sentence pairs (14,810 training pairs) in about 5-8
minutes each on one CPU core: small models (embeddings 128, 128 recurrent
units; Transformer 2+2 layers, d_model 128) for a few epochs. The
`ted_hrlr_*` and `wmt14_*` experiments use the official TFDS datasets
(where they can be downloaded or are prepared in `--data-dir`) at the TF
Transformer tutorial's size (4 layers, d_model 128, 8 heads, dff 512).
"""

import dataclasses
from functools import partial

from experiments.config import DataConfig
from experiments.config import ExperimentConfig
from experiments.config import ModelConfig
from experiments.config import TrainConfig
from experiments.config import apply_overrides
from experiments.config import register_experiments
from experiments.configs.seq2seq import Seq2SeqEvalConfig


@dataclasses.dataclass
class TranslationDataConfig(DataConfig):
    """Parallel text: feature keys, WordPiece vocabularies, lengths.

    Attributes:
        source_key: feature holding the source sentence (a language code of
            a `tfds.features.Translation`, or any string feature).
        target_key: feature holding the reference translation.
        vocab_size: target size of each WordPiece vocabulary, learnt from
            the training split with HuggingFace `tokenizers` (the learner
            may stop below it on small corpora).
        shared_vocabulary: learn one vocabulary of `vocab_size` pieces
            from both sides' training text and use it for both (Vaswani
            et al. 2017, §5.1), as `transformer_translator`'s
            `share_embeddings` needs.
        lowercase: lower-case both sides (BLEU is then case-insensitive).
        max_source_length: source tokens kept, including [START]/[END];
            longer training pairs are dropped, longer sentences at
            evaluation and serving time are truncated (and flagged).
        max_target_length: target tokens, including [START]/[END]; longer
            training pairs are dropped; the decoding limit.
        bucket: batch sentences of similar length together (less padding).
    """

    name: str = "ding_de_en"
    source_key: str = "de"
    target_key: str = "en"
    train_split: str = "train"
    validation_split: str = "auto"
    test_split: str = "test"
    batch_size: int = 64
    eval_batch_size: int = 128
    vocab_size: int = 8000
    shared_vocabulary: bool = False
    lowercase: bool = True
    max_source_length: int = 48
    max_target_length: int = 48
    bucket: bool = True


@dataclasses.dataclass
class TranslationEvalConfig(Seq2SeqEvalConfig):
    """Evaluation of a translator (see `Seq2SeqEvalConfig`).

    Attributes:
        attention_maps: sentences whose alignment heatmap is drawn.
        compiled: decode the test split with `tf.function` graphs (eager
            step-by-step decoding when `False`: slower per sentence, but no
            tracing -- for smoke runs).
        jit_compile: XLA-compile the evaluation decoders.
        alignment_pairs: training pairs IBM Model 2 learns from, for the
            agreement of attention with its word alignments on the test
            split (`alignment_agreement_ibm2` in metrics.json); 0 turns
            the measurement off.
        length_penalty_choices: length penalties tried after training:
            the one whose beam search scores the highest BLEU on the
            validation split (its first `data.max_eval_examples` pairs;
            the first choice on a tie) replaces `length_penalty` for the
            test split and the export. Empty: `length_penalty` as set.
    """

    attention_maps: int = 4
    alignment_pairs: int = 20000
    length_penalty: float = 0.6
    length_penalty_choices: list[float] = dataclasses.field(
        default_factory=list
    )
    compiled: bool = True
    jit_compile: bool = False


# The Ding recipe, sized from measured step times so that each translator
# trains in minutes on one CPU core (on an unloaded core: about 5-8; the
# README gives the measured wall times on the shared machine): 128-unit
# encoders/decoders, sentences of at most 32 WordPiece tokens (97% of the
# pairs; the learner stops at ~2,500 pieces per side on this corpus), Adam
# at a high learning rate with a cosine decay, few epochs. The slower
# attention models (Luong: LSTM + input feeding) get fewer epochs, so the
# models have comparable training-time budgets; validation accuracy is
# logged every epoch and the search settings were checked on validation.
DING_MAX_LENGTH = 32
# Length penalties the offline recipes try on the validation split after
# training (GNMT alpha; 0 = plain log-probability). With (0, 0.3, 0.6,
# 1.0), the validation BLEU of five of the six gettext models rose up to
# 1.0, the edge of the grid; 1.5 and 2.0 extend it.
LENGTH_PENALTY_CHOICES = (0.0, 0.3, 0.6, 1.0, 1.5, 2.0)
_DING_MODEL_KWARGS = {
    "seq2seq_gru": {"embedding_dim": 128, "units": 128, "dropout": 0.1},
    "seq2seq_bahdanau": {"embedding_dim": 128, "units": 128, "dropout": 0.1},
    "seq2seq_luong": {"embedding_dim": 128, "units": 128, "dropout": 0.1},
    "transformer_translator": {
        "num_layers": 2,
        "model_dim": 128,
        "num_heads": 4,
        "ff_dim": 256,
        "dropout": 0.1,
    },
}
_DING_EPOCHS = {
    "seq2seq_gru": 4,
    "seq2seq_bahdanau": 3,
    "seq2seq_luong": 2,
    "transformer_translator": 5,
}
_DING_LEARNING_RATES = {
    "seq2seq_gru": 5e-3,
    "seq2seq_bahdanau": 5e-3,
    "seq2seq_luong": 5e-3,
    "transformer_translator": 2e-3,
}


def _train_config(model, epochs, learning_rate=None, clipnorm=None):
    """Adam with a cosine decay (the Transformer warms up for an epoch)."""
    if model == "transformer_translator":
        return TrainConfig(
            epochs=epochs,
            optimizer="adam",
            learning_rate=learning_rate or 1e-3,
            weight_decay=0.0,
            schedule="cosine",
            warmup_epochs=1,
            clipnorm=clipnorm or 1.0,
        )
    return TrainConfig(
        epochs=epochs,
        optimizer="adam",
        learning_rate=learning_rate or 2e-3,
        weight_decay=0.0,
        schedule="cosine",
        clipnorm=clipnorm or 5.0,
    )


def _label(model, model_kwargs):
    """The model as an experiment description names it: "seq2seq_luong,
    score=dot" (the builder arguments that differ from the recipe's)."""
    return model + "".join(f", {k}={v}" for k, v in model_kwargs.items())


def ding_experiment(model, epochs=None, **model_kwargs):
    """A translator on the offline Ding German->English pairs."""
    kwargs = {**_DING_MODEL_KWARGS[model], **model_kwargs}
    return ExperimentConfig(
        task="translation",
        data=TranslationDataConfig(
            name="ding_de_en",
            vocab_size=8000,
            max_source_length=DING_MAX_LENGTH,
            max_target_length=DING_MAX_LENGTH,
        ),
        model=ModelConfig(name=model, kwargs=kwargs),
        train=_train_config(
            model,
            epochs or _DING_EPOCHS[model],
            learning_rate=_DING_LEARNING_RATES[model],
            clipnorm=1.0,
        ),
        eval=TranslationEvalConfig(
            length_penalty_choices=list(LENGTH_PENALTY_CHOICES)
        ),
        description=(
            f"{_label(model, model_kwargs)} on Ding de->en (offline, ~5-8 "
            "min training on one CPU core)"
        ),
    )


def ding_phrases_experiment(model, epochs=None, **model_kwargs):
    """Ding sentences plus the dictionary's phrase pairs (training only).

    About 4x the training pairs of `ding_experiment`, so fewer epochs;
    validation and test are Ding's sentences, as there.
    """
    config = ding_experiment(model, **model_kwargs)
    config.data.name = "ding_de_en/sentences_and_phrases"
    config.train.epochs = epochs or _DING_PHRASES_EPOCHS[model]
    config = apply_overrides(config, _DING_PHRASES_RECIPES.get(model, ()))
    config.description = (
        f"{_label(model, model_kwargs)} on Ding de->en + phrase pairs "
        "(offline; up to ~15 min training on 2 idle cores)"
    )
    return config


# The gettext recipe: software-UI messages (gettext_de_en, ~42k training
# pairs, most under 16 WordPiece tokens), the Ding model sizes, sentences
# up to 40 tokens. The validation and test splits hold about 2.7k
# messages each; each is evaluated on its first 1,500 (a fixed subset: the
# split order is the builder's), which keeps beam-search evaluation inside
# the time budget. Epochs and learning rates follow the Ding recipe scaled
# to the corpus size; the length penalty is chosen on the validation split
# after training (`LENGTH_PENALTY_CHOICES`). The RNNs' learning rate 5e-3
# was checked on validation: Bahdanau's BLEU 22.76 against 18.24 at 2e-3
# and 19.82 at 1e-2; Luong dot's 25.88 against 23.41 at 1e-2.
GETTEXT_MAX_LENGTH = 40
# The Transformer's recipe, chosen on validation BLEU (beam 4, best length
# penalty; gettext_de_en 1.1.0; `runs/tune2`, see docs/translation.md):
# WordPiece vocabularies of 4,000 instead of 8,000 (validation BLEU 21.08 ->
# 21.98 at 8 epochs; 2,000: 20.32), batches of 128 sentences for 12
# epochs (-> 23.30; batches of 256 for 16 epochs at learning rate 3e-3:
# 22.73), label smoothing 0.1 (Vaswani et al. 2017; on 1.0.0: 20.23 ->
# 21.19). Tried and worse: dropout 0.2 with
# feed-forward 512 for 14 epochs (20.23), dropout 0.3 (validation
# accuracy 0.49 after 15 of 16 epochs against 0.52), the target embedding
# shared with the output layer (`tie_embeddings`, validation accuracy
# 0.479 against 0.496 after 5 of 8 epochs), learning rates 1e-3 and 3e-3
# instead of the Ding recipe's 2e-3 (22.37, 22.56), a moving average of
# the weights (`train.ema_momentum=0.999`: 22.55).
_GETTEXT_RECIPES = {
    "transformer_translator": (
        "train.label_smoothing=0.1",
        "data.vocab_size=4000",
        "data.batch_size=128",
    ),
}
_GETTEXT_EPOCHS = {
    "seq2seq_gru": 6,
    "seq2seq_bahdanau": 5,
    "seq2seq_luong": 5,
    "transformer_translator": 12,
}
# Bahdanau gets 4 epochs on Ding with phrases: its validation BLEU (beam,
# penalty 1.0) rose from 5.79 after 2 epochs to 7.22 after 4, where its
# validation loss flattens (3.645 -> 3.640 over the last epoch).
_DING_PHRASES_EPOCHS = {
    "seq2seq_gru": 2,
    "seq2seq_bahdanau": 4,
    "seq2seq_luong": 2,
    "transformer_translator": 5,
}
# Bahdanau on Ding with phrases overfits (training accuracy 0.60 against
# 0.41 on validation after 4 epochs). Label smoothing 0.1 with a moving
# average of the weights (`train.ema_momentum`, about the last 1,000 of
# its 5,684 steps) raised its validation BLEU from 7.34 to 7.45
# (`runs/tune3`, see docs/translation.md). It keeps logits from
# `[s_t; c_t]` (`readout="state"`): the paper's deep output, better on
# gettext, reached validation BLEU 6.87 here against 7.45. The Transformer
# takes the gettext Transformer's batches of 128 and label smoothing 0.1:
# validation BLEU 3.53 after 3 epochs of the Ding recipe, 6.63 after 7
# epochs of this one; an idle epoch takes about 3 minutes, so 5 fit the
# 15-minute budget.
_DING_PHRASES_RECIPES = {
    "seq2seq_bahdanau": (
        "train.label_smoothing=0.1",
        "train.ema_momentum=0.999",
        "model.readout=state",
    ),
    "transformer_translator": (
        "train.label_smoothing=0.1",
        "data.batch_size=128",
    ),
}


def gettext_experiment(model, epochs=None, **model_kwargs):
    """A translator on the offline gettext German->English messages."""
    config = ding_experiment(model, **model_kwargs)
    config.data = TranslationDataConfig(
        name="gettext_de_en",
        vocab_size=8000,
        max_source_length=GETTEXT_MAX_LENGTH,
        max_target_length=GETTEXT_MAX_LENGTH,
        max_eval_examples=1500,
    )
    config.train.epochs = epochs or _GETTEXT_EPOCHS[model]
    config = apply_overrides(config, _GETTEXT_RECIPES.get(model, ()))
    config.description = (
        f"{_label(model, model_kwargs)} on gettext de->en software messages "
        "(offline; Debian packages, see docs/translation.md)"
    )
    return config


def ted_hrlr_experiment(model="transformer_translator", epochs=20):
    """The TF Transformer tutorial's setting: TED talks pt->en."""
    kwargs = {}
    if model == "transformer_translator":
        kwargs = {
            "num_layers": 4,
            "model_dim": 128,
            "num_heads": 8,
            "ff_dim": 512,
            "dropout": 0.1,
        }
    train = _train_config(model, epochs)
    if model == "transformer_translator":
        train.warmup_epochs = 2
    return ExperimentConfig(
        task="translation",
        data=TranslationDataConfig(
            name="ted_hrlr_translate/pt_to_en",
            source_key="pt",
            target_key="en",
            max_source_length=128,
            max_target_length=128,
        ),
        model=ModelConfig(name=model, kwargs=kwargs),
        train=train,
        eval=TranslationEvalConfig(),
        description=(
            f"{model} on TED pt->en, TF tutorial size (official TFDS; "
            "needs the data)"
        ),
    )


def wmt14_experiment(model="transformer_translator", epochs=10):
    """WMT'14 English-German news (de->en), for scale."""
    config = ted_hrlr_experiment(model, epochs)
    config.data = TranslationDataConfig(
        name="wmt14_translate/de-en",
        source_key="de",
        target_key="en",
        batch_size=128,
        vocab_size=16000,
        max_source_length=128,
        max_target_length=128,
        max_eval_examples=3003,
    )
    config.description = (
        f"{model} on WMT'14 de->en (official TFDS; needs the data, large)"
    )
    return config


# === Named experiments ===
EXPERIMENTS = {
    # The offline default: software messages translate readably.
    "gettext_de_en": partial(gettext_experiment, "seq2seq_bahdanau"),
    "gettext_seq2seq_gru": partial(gettext_experiment, "seq2seq_gru"),
    "gettext_seq2seq_bahdanau": partial(gettext_experiment, "seq2seq_bahdanau"),
    "gettext_seq2seq_luong": partial(gettext_experiment, "seq2seq_luong"),
    "gettext_seq2seq_luong_dot": partial(
        gettext_experiment, "seq2seq_luong", score="dot"
    ),
    "gettext_seq2seq_luong_concat": partial(
        gettext_experiment, "seq2seq_luong", score="concat"
    ),
    "gettext_transformer_translator": partial(
        gettext_experiment, "transformer_translator"
    ),
    "ding_de_en": partial(ding_experiment, "transformer_translator"),
    "ding_seq2seq_gru": partial(ding_experiment, "seq2seq_gru"),
    "ding_seq2seq_bahdanau": partial(ding_experiment, "seq2seq_bahdanau"),
    "ding_seq2seq_luong": partial(ding_experiment, "seq2seq_luong"),
    "ding_transformer_translator": partial(
        ding_experiment, "transformer_translator"
    ),
    # ding_seq2seq_luong uses the "general" score; the other two scores:
    "ding_seq2seq_luong_dot": partial(
        ding_experiment, "seq2seq_luong", score="dot"
    ),
    "ding_seq2seq_luong_concat": partial(
        ding_experiment, "seq2seq_luong", score="concat"
    ),
    "ding_phrases_seq2seq_gru": partial(ding_phrases_experiment, "seq2seq_gru"),
    "ding_phrases_seq2seq_bahdanau": partial(
        ding_phrases_experiment, "seq2seq_bahdanau"
    ),
    "ding_phrases_seq2seq_luong": partial(
        ding_phrases_experiment, "seq2seq_luong"
    ),
    "ding_phrases_transformer_translator": partial(
        ding_phrases_experiment, "transformer_translator"
    ),
    "ted_hrlr_pt_en": partial(ted_hrlr_experiment, "transformer_translator"),
    "ted_hrlr_pt_en_seq2seq_gru": partial(ted_hrlr_experiment, "seq2seq_gru"),
    "ted_hrlr_pt_en_seq2seq_bahdanau": partial(
        ted_hrlr_experiment, "seq2seq_bahdanau"
    ),
    "ted_hrlr_pt_en_seq2seq_luong": partial(
        ted_hrlr_experiment, "seq2seq_luong"
    ),
    "ted_hrlr_pt_en_transformer_translator": partial(
        ted_hrlr_experiment, "transformer_translator"
    ),
    "wmt14_de_en": partial(wmt14_experiment, "transformer_translator"),
    "wmt14_de_en_seq2seq_bahdanau": partial(
        wmt14_experiment, "seq2seq_bahdanau"
    ),
}
register_experiments(EXPERIMENTS)
