"""Word alignments from attention, and their agreement with IBM Model 2.

A translator's attention weights are over WordPiece tokens; people read
alignments over words. `word_alignment` merges the pieces of each word
(`##` continuations): a source word's weight is the sum over its pieces,
a target word's row the mean over its pieces; `[START]`/`[END]` columns
are dropped.

`ibm2_agreement` measures whether attention points where a statistical
aligner does: IBM Model 2 (Brown et al. 1993, as implemented by
`nltk.translate.IBMModel2`) is trained on the training split's words, then
for each translated test sentence every target word that IBM Model 2
aligns to a source word counts as agreeing when the attention's argmax
source word is that word. A model whose attention translates but points
nowhere in particular scores near chance (1 / source length).

References: Brown et al. 1993, "The Mathematics of Statistical Machine
Translation: Parameter Estimation"; Bahdanau et al. 2014 (attention as
soft alignment).
"""

import numpy as np
from nltk.translate import AlignedSent
from nltk.translate import IBMModel2

SUFFIX = "##"
SPECIAL = ("[PAD]", "[START]", "[END]")


def merge_pieces(tokens):
    """Words of WordPiece tokens, and each kept token's word index.

    Returns:
        `(words, index)`: the words (pieces joined, specials dropped) and a
        list parallel to `tokens` with each token's word index (`None` for
        special tokens).
    """
    words, index = [], []
    for token in tokens:
        if token in SPECIAL:
            index.append(None)
        elif token.startswith(SUFFIX) and words:
            words[-1] += token[len(SUFFIX) :]
            index.append(len(words) - 1)
        else:
            words.append(token)
            index.append(len(words) - 1)
    return words, index


def word_alignment(weights, source_tokens, target_tokens):
    """Word-level attention `[target words, source words]`.

    Args:
        weights: `[T, S]` attention of target tokens over source tokens.
        source_tokens: the `S` source tokens (WordPiece strings).
        target_tokens: the `T` target tokens.

    Returns:
        `(matrix, source_words, target_words)`.
    """
    weights = np.asarray(weights, dtype="float64")
    source_words, source_index = merge_pieces(source_tokens)
    target_words, target_index = merge_pieces(target_tokens)
    by_source = np.zeros((len(target_tokens), len(source_words)))
    for column, word in enumerate(source_index):
        if word is not None and column < weights.shape[1]:
            by_source[:, word] += weights[: len(target_tokens), column]
    matrix = np.zeros((len(target_words), len(source_words)))
    counts = np.zeros(len(target_words))
    for row, word in enumerate(target_index):
        if word is not None and row < weights.shape[0]:
            matrix[word] += by_source[row]
            counts[word] += 1
    matrix /= np.maximum(counts, 1)[:, None]
    return matrix, source_words, target_words


def train_ibm2(pairs, iterations=5):
    """IBM Model 2 on `(source words, target words)` pairs (NLTK)."""
    bitext = [
        AlignedSent(list(target), list(source)) for source, target in pairs
    ]
    return IBMModel2(bitext, iterations)


def ibm2_links(model, source_words, target_words):
    """`{target word index: source word index}` of IBM Model 2's alignment."""
    sentence = AlignedSent(list(target_words), list(source_words))
    model.align(sentence)
    return {t: s for t, s in sentence.alignment if s is not None}


def ibm2_agreement(model, examples):
    """Agreement of attention argmaxes with IBM Model 2's alignments.

    Args:
        model: a trained `nltk.translate.IBMModel2`.
        examples: `(matrix, source_words, target_words)` word alignments
            (from `word_alignment`).

    Returns:
        `(agreement, links)`: the fraction of IBM-aligned target words whose
        attention argmax is the same source word, and how many such target
        words were compared (agreement is `nan` when none were).
    """
    agree = total = 0
    for matrix, source_words, target_words in examples:
        if not source_words or not target_words:
            continue
        links = ibm2_links(model, source_words, target_words)
        for target, source in links.items():
            total += 1
            agree += int(np.argmax(matrix[target]) == source)
    return (agree / total if total else float("nan")), total
