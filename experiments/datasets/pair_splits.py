"""Leak-free splits of sentence-pair corpora: grouping and seeded hashing.

Pairs that must not straddle splits (they share a sentence, or are near
duplicates of each other) are joined into one group with a union-find, and
a whole group is assigned to a split by a seeded hash of its key. A hash
rather than a permutation keeps every group in its split when the corpus
grows (a newer dictionary, another package version).

Near duplicates are texts whose character similarity (`difflib`'s ratio,
`2 * matches / total length`) reaches a threshold. Grouping finds them
through blocking keys (a text shares a key with every text one word
substitution, insertion or deletion away; short texts by word prefixes),
then checks the similarity; `near_duplicate_matches` finds what grouping
missed by an exhaustive search bounded with character counts (a builder
can join those groups too), and `cross_split_near_duplicates` measures it.
"""

import collections
import difflib
import hashlib

import numpy as np

SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
_PRIME = (1 << 61) - 1


class UnionFind:
    """Disjoint sets of hashable nodes (path halving, smallest root)."""

    def __init__(self):
        self.parent = {}

    def find(self, node):
        parent = self.parent
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def assign_split(group_key, seed, fractions=None):
    """Maps a group key to a split name by a seeded hash."""
    fractions = fractions or SPLIT_FRACTIONS
    digest = hashlib.sha256(f"{seed}:{group_key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    cumulative = 0.0
    for name, fraction in fractions.items():
        cumulative += fraction
        if position < cumulative:
            return name
    return name  # Rounding: the last split takes the remainder.


def similarity(a, b):
    """Character similarity in [0, 1] (`difflib` ratio, 2 * matches / len)."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def is_near_duplicate(a, b, threshold=0.8):
    """Whether `similarity(a, b) >= threshold` (cheap bounds first)."""
    shorter, longer = sorted((len(a), len(b)))
    if 2.0 * shorter / max(shorter + longer, 1) < threshold:
        return False
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold


# Blocking keys shared by more texts than this are skipped (a common word
# pair such as "of the"); near duplicates share rarer keys as well.
MAX_BUCKET = 1000


def _blocking_keys(text):
    words = text.split()
    if len(words) >= 3:
        # Near duplicates of a few words or more share a word pair...
        for i in range(len(words) - 1):
            yield f"{words[i]} {words[i + 1]}"
        # ...or are one word substitution, deletion or insertion apart.
        yield " ".join(words)
        for i in range(len(words)):
            yield " ".join(words[:i] + ["*"] + words[i + 1 :])
            yield " ".join(words[:i] + words[i + 1 :])
        # ...or an inflection plus at most one word apart.
        prefixes = [word[:3] for word in words]
        yield "^" + " ".join(prefixes)
        for i in range(len(words)):
            yield "^" + " ".join(prefixes[:i] + prefixes[i + 1 :])
    else:
        # Short texts: themselves (a longer text one word away has this
        # key) and their word prefixes (inflections, small edits).
        yield " ".join(words)
        yield "^" + " ".join(word[:3] for word in words)


def near_duplicate_groups(keys, threshold=0.8):
    """Groups indices of `keys` whose texts are near duplicates.

    Returns a list parallel to `keys`: each entry's group id (the smallest
    index of its group). Equal keys are always grouped; distinct keys that
    share a blocking key are grouped when their character similarity is at
    least `threshold` (transitively).
    """
    groups = UnionFind()
    first_of = {}
    for index, key in enumerate(keys):
        groups.union(index, first_of.setdefault(key, index))
    buckets = collections.defaultdict(set)
    for text, index in first_of.items():
        for block in _blocking_keys(text):
            buckets[block].add(index)
    checked = set()
    for members in buckets.values():
        if len(members) > MAX_BUCKET:
            continue
        members = sorted(members)
        for position, i in enumerate(members):
            for j in members[position + 1 :]:
                if (i, j) in checked or groups.find(i) == groups.find(j):
                    continue
                checked.add((i, j))
                if is_near_duplicate(keys[i], keys[j], threshold):
                    groups.union(i, j)
    return [groups.find(index) for index in range(len(keys))]


def _char_counts(texts, alphabet):
    counts = np.zeros((len(texts), len(alphabet) + 1), np.int16)
    for row, text in enumerate(texts):
        for char, n in collections.Counter(text).items():
            counts[row, alphabet.get(char, len(alphabet))] += n
    return counts


def near_duplicate_matches(held_out, train, threshold=0.8):
    """For each `held_out` text, the index in `train` of a near duplicate
    (`similarity >= threshold`), or -1 where `train` has none.

    Exhaustive: every held-out text is compared with every training text.
    The shared character counts bound the similarity from above
    (`difflib`'s `quick_ratio`), computed for all pairs at once; only pairs
    whose bound reaches `threshold` are compared exactly.
    """
    matches = np.full(len(held_out), -1, np.int64)
    if not held_out or not train:
        return matches
    first_index = {}
    for index, text in enumerate(train):
        first_index.setdefault(text, index)
    # Distinct training texts by length (the length bound below).
    texts = sorted(first_index, key=len)
    # The 63 most frequent characters, the rest counted together (which
    # keeps the bound an upper bound).
    alphabet = {
        char: i
        for i, (char, _) in enumerate(
            collections.Counter("".join(texts)).most_common(63)
        )
    }
    counts = _char_counts(texts, alphabet)
    lengths = np.array([len(t) for t in texts])
    for row, text in enumerate(held_out):
        if text in first_index:
            matches[row] = first_index[text]
            continue
        # Only lengths within [r / (2 - r), (2 - r) / r] times this one
        # can reach the threshold r.
        low = np.searchsorted(lengths, len(text) * threshold / (2 - threshold))
        high = np.searchsorted(
            lengths, len(text) * (2 - threshold) / threshold, "right"
        )
        own = _char_counts([text], alphabet)[0]
        shared = np.minimum(counts[low:high], own).sum(axis=1)
        bound = 2.0 * shared / (lengths[low:high] + len(text))
        for j in np.flatnonzero(bound >= threshold):
            if similarity(text, texts[low + j]) >= threshold:
                matches[row] = first_index[texts[low + j]]
                break
    return matches


def cross_split_near_duplicates(held_out, train, threshold=0.8):
    """Fraction of `held_out` texts with a near duplicate in `train`
    (exhaustive; see `near_duplicate_matches`)."""
    if not held_out:
        return 0.0
    matches = near_duplicate_matches(held_out, train, threshold)
    return float(np.mean(matches >= 0))
