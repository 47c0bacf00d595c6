"""WordPiece subword tokenisation in core TensorFlow ops (Wu et al. 2016).

The vocabulary is learnt from the training split with HuggingFace
`tokenizers`' WordPiece trainer (Rust; seconds for 100k sentences, a
training-time dependency only); the
tokeniser itself -- normalisation, pre-tokenisation and greedy
longest-match-first WordPiece, plus detokenisation -- uses only core
TensorFlow string ops, so a SavedModel that contains it loads and runs in a
process with plain TensorFlow (no `import tensorflow_text`). It gives the
same ids as `tensorflow_text.FastWordpieceTokenizer` on the same words
(tested).

Pipeline of `WordPieceTokenizer.tokenize`:
1. repair invalid UTF-8 (replacement character U+FFFD), optionally
   lower-case (Unicode-aware), normalise apostrophes and quotes
   (’ ‘ ` ´ -> ', “ ” „ « » -> ");
2. split on whitespace, and around every punctuation/symbol character and
   every CJK character (as BERT's basic tokeniser does);
3. WordPiece: each word becomes its longest vocabulary prefix, then the
   longest `##`-prefixed vocabulary piece of the rest, and so on; a word
   that cannot be covered, or longer than `max_word_chars` characters,
   becomes `[UNK]`.

Reference: Wu et al. 2016, "Google's Neural Machine Translation System"
(WordPiece); Devlin et al. 2019 (BERT's basic tokeniser).
"""

import tensorflow as tf

from zoo.tokens import RESERVED_TOKENS

# Names the vocabulary learner (part of the vocabulary cache key, so a
# vocabulary learnt by another learner is not reused).
LEARNER = "wordpiece-hf-tokenizers-v1"

SUFFIX = "##"

# Characters that become tokens of their own: punctuation, symbols and CJK
# ideographs / kana / hangul (BERT splits CJK characters one by one).
_SPLIT = r"([\pP\pS\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}])"
_APOSTROPHES = "[’‘`´ʼ]"
_QUOTES = "[“”„«»‟]"


def normalize(text, lowercase=True):
    """Normalises a string tensor (see the module docstring, step 1)."""
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, _APOSTROPHES, "'")
    text = tf.strings.regex_replace(text, _QUOTES, '"')
    return text


def split_words(text, lowercase=True):
    """Normalised words: ragged `[B, (words)]` of a string tensor `[B]`."""
    text = normalize(text, lowercase)
    text = tf.strings.regex_replace(text, _SPLIT, r" \1 ")
    return tf.strings.split(text)


def pretokenize(text, lowercase=True):
    """The normalised words of each string joined by single spaces.

    What the vocabulary learner sees, so that its own splitting (BERT's
    basic tokeniser, which splits a subset of these characters) changes
    nothing.
    """
    return tf.strings.reduce_join(
        split_words(text, lowercase), axis=-1, separator=" "
    )


def learn_vocabulary(
    texts, vocab_size=8000, lowercase=True, reserved=RESERVED_TOKENS
):
    """Learns a WordPiece vocabulary with HuggingFace `tokenizers`.

    The text is normalised and split into words by this module
    (`pretokenize`), so the trainer only merges characters into pieces;
    its vocabulary (`##` continuation pieces, every character seen)
    serves `WordPieceTokenizer`, which applies it with the same greedy
    longest-match-first rule as the trainer's own WordPiece model.

    Args:
        texts: a `tf.data.Dataset` of scalar strings (training split), or
            an iterable of Python strings.
        vocab_size: target vocabulary size (an upper bound).
        lowercase: lower-case the text first.
        reserved: tokens placed first (ids 0, 1, 2, ...).

    Returns:
        The vocabulary, a list of strings (`reserved` first).
    """
    # Only learning a vocabulary needs `tokenizers`; the tokeniser and an
    # exported model run on core TensorFlow alone.
    from tokenizers import Tokenizer
    from tokenizers import models
    from tokenizers import pre_tokenizers
    from tokenizers import trainers

    if not isinstance(texts, tf.data.Dataset):
        texts = tf.data.Dataset.from_tensor_slices(list(texts))
    words = texts.batch(1024).map(
        lambda t: pretokenize(t, lowercase),
        num_parallel_calls=tf.data.AUTOTUNE,
    )

    def lines():
        for batch in words.as_numpy_iterator():
            yield [line.decode("utf-8") for line in batch]

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(reserved),
        continuing_subword_prefix=SUFFIX,
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines(), trainer)
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return [token for token, _ in by_id]


class WordPieceTokenizer(tf.Module):
    """String <-> WordPiece id tokeniser in core TensorFlow ops.

    A `tf.Module`, so its lookup tables are saved with a SavedModel that
    tracks it; `tokenize` and `detokenize` trace into any `tf.function`.

    Args:
        vocab: list of vocabulary strings; ids are positions. Must contain
            `[UNK]`.
        lowercase: lower-case text before tokenising.
        max_word_chars: words longer than this become `[UNK]`.
        name: module name.

    Example:
    ```python
    from experiments.wordpiece import WordPieceTokenizer

    vocab = ["[PAD]", "[UNK]", "[START]", "[END]", "the", "cat", "s",
             "##s", "!", "."]
    tokenizer = WordPieceTokenizer(vocab)
    ids = tokenizer.tokenize(["The cats!"])
    assert ids.to_list() == [[4, 5, 7, 8]]
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"the cats!"]
    ```
    """

    def __init__(self, vocab, lowercase=True, max_word_chars=100, name=None):
        super().__init__(name=name)
        vocab = [str(v) for v in vocab]
        if "[UNK]" not in vocab:
            raise ValueError(
                "The vocabulary must contain '[UNK]'. Received: "
                f"{len(vocab)} tokens starting {vocab[:5]}"
            )
        if len(set(vocab)) != len(vocab):
            raise ValueError("The vocabulary has duplicate tokens.")
        self.vocab = vocab
        self.lowercase = bool(lowercase)
        self.max_word_chars = int(max_word_chars)
        self.unk_id = vocab.index("[UNK]")
        self.special_ids = [
            i for i, v in enumerate(vocab) if v.startswith("[") and v != "[UNK]"
        ]
        # Longest piece in characters (without the ## prefix): the
        # candidate lengths tried at each position.
        self.max_piece_chars = max(
            len(v[len(SUFFIX) :] if v.startswith(SUFFIX) else v) for v in vocab
        )
        self._vocab_tensor = tf.constant(vocab)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self._vocab_tensor,
                tf.range(len(vocab), dtype=tf.int64),
            ),
            default_value=-1,
        )

    @property
    def vocab_size(self):
        return len(self.vocab)

    # === Tokenisation ===

    def _wordpiece(self, words):
        """Ids of flat words `[W]` -> ragged `[W, (pieces)]` int64."""
        width = self.max_piece_chars
        chars = tf.strings.length(words, unit="UTF8_CHAR")  # [W]
        num_words = tf.shape(words)[0]
        lengths = tf.range(1, width + 1)  # [M] candidate piece lengths
        tiled = tf.repeat(words[:, None], width, axis=1)  # [W, M]
        too_long = chars > self.max_word_chars
        # A word has at most one piece per character.
        longest = tf.reduce_max(
            tf.concat([tf.where(too_long, 0, chars), [0]], 0)
        )
        max_pieces = tf.maximum(longest, 1)

        def cond(i, position, failed, ids):
            return (i < max_pieces) & tf.reduce_any(
                (position < chars) & ~failed
            )

        def body(i, position, failed, ids):
            active = (position < chars) & ~failed  # [W]
            start = tf.repeat(position[:, None], width, axis=1)
            pieces = tf.strings.substr(
                tiled,
                start,
                tf.broadcast_to(lengths, tf.shape(start)),
                unit="UTF8_CHAR",
            )
            pieces = tf.where(start > 0, SUFFIX + pieces, pieces)
            found = self._table.lookup(pieces)  # [W, M]
            fits = lengths[None, :] <= (chars - position)[:, None]
            usable = (found >= 0) & fits
            # Longest usable piece: the last `True` along the lengths.
            best = tf.reduce_max(
                tf.where(usable, lengths[None, :], 0), axis=1
            )  # [W]
            piece = tf.gather(
                found, tf.maximum(best - 1, 0), batch_dims=1
            )  # [W]
            failed = failed | (active & tf.equal(best, 0))
            write = active & (best > 0)
            column = tf.equal(tf.range(tf.shape(ids)[1]), i)[None, :]
            ids = tf.where(column & write[:, None], piece[:, None], ids)
            position = position + tf.where(write, best, 0)
            return i + 1, position, failed, ids

        _, position, failed, ids = tf.while_loop(
            cond,
            body,
            (
                tf.constant(0),
                tf.zeros([num_words], tf.int32),
                too_long,
                tf.fill([num_words, max_pieces], tf.constant(-1, tf.int64)),
            ),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([None]),
                tf.TensorShape([None]),
                tf.TensorShape([None, None]),
            ),
        )
        failed = failed | (position < chars)
        counts = tf.where(
            failed, 1, tf.reduce_sum(tf.cast(ids >= 0, tf.int32), axis=1)
        )
        ids = tf.where(failed[:, None], tf.constant(-1, tf.int64), ids)
        ids = tf.concat(
            [
                tf.where(
                    failed[:, None],
                    tf.constant(self.unk_id, tf.int64),
                    ids[:, :1],
                ),
                ids[:, 1:],
            ],
            axis=1,
        )
        return tf.RaggedTensor.from_tensor(ids, lengths=counts)

    def tokenize(self, text):
        """Token ids, ragged int64 `[B, (tokens)]`, of a string tensor `[B]`."""
        words = split_words(tf.convert_to_tensor(text), self.lowercase)
        pieces = self._wordpiece(words.flat_values)  # [W, (pieces)]
        by_sentence = words.with_flat_values(pieces)  # [B, (w), (p)]
        return by_sentence.merge_dims(1, 2)

    def tokenize_words(self, words):
        """WordPiece ids of already split words: ragged `[W, (pieces)]`."""
        return self._wordpiece(tf.convert_to_tensor(words))

    # === Detokenisation ===

    def id_to_token(self, ids):
        """Vocabulary strings of int ids (any shape)."""
        return tf.gather(self._vocab_tensor, tf.cast(ids, tf.int32))

    def detokenize(self, ids):
        """Readable text `[B]` of ids `[B, L]` (dense or ragged).

        Special tokens (`[PAD]`, `[START]`, `[END]`) are dropped, pieces
        are joined (`##`), and spaces around punctuation are removed where
        written English/German puts none ("word ," -> "word,",
        "don ' t" -> "don't", "( word )" -> "(word)").
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.cast(ids, tf.int32)
        keep = tf.ones_like(ids, tf.bool)
        for special in self.special_ids:
            keep = keep & tf.not_equal(ids, special)
        ids = tf.ragged.boolean_mask(ids, keep)
        tokens = tf.gather(self._vocab_tensor, ids)
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        text = tf.strings.regex_replace(text, " " + SUFFIX, "")
        text = tf.strings.regex_replace(text, r" ([.,!?;:%)\]}])", r"\1")
        text = tf.strings.regex_replace(text, r"([(\[{¿¡]) ", r"\1")
        text = tf.strings.regex_replace(text, r"([\pL\pN]) ' ([\pL])", r"\1'\2")
        text = tf.strings.regex_replace(
            text, r"([\pL\pN]) - ([\pL\pN])", r"\1-\2"
        )
        text = tf.strings.regex_replace(text, r'" ([^"]*?) "', r'"\1"')
        return tf.strings.strip(text)

    def tokens(self, ids):
        """Readable token strings of ids (for attention-map labels)."""
        return self.id_to_token(ids)
