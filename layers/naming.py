"""Unknown names: the one exception type and the one "did you mean" hint.

Every registry of the project -- the scores (`get_score`), the vision
blocks (`get_attention`), the Luong scores, the zoo (`zoo.build`), the
benchmarks and the named experiments -- reports a name it does not know
with `UnknownNameError` and a message ending in the close spellings that
`did_you_mean` finds (`difflib`, as `keras.saving` and argparse do).
"""

import difflib


class UnknownNameError(KeyError, ValueError):
    """A name that no entry of a registry has.

    A `KeyError` (a failed lookup, as `zoo.build` documents) and a
    `ValueError` (a bad argument value, as Keras layers raise), so callers
    may catch either.
    """

    def __str__(self):
        # KeyError quotes its message; this is a sentence.
        return str(self.args[0]) if self.args else ""


def close_matches(name, names, n=5, cutoff=0.6):
    """The names in `names` spelled most like `name`, best first.

    Falls back on the names that contain `name` (case-insensitive), which
    helps with partial names such as "resnet" or "cifar".

    Example:

    >>> close_matches("cbam_resnt20", ["resnet20", "cbam_resnet20"])
    ['cbam_resnet20', 'resnet20']
    >>> close_matches("cifar", ["cifar10", "cifar100", "mnist"])
    ['cifar10', 'cifar100']
    """
    names = [str(candidate) for candidate in names]
    matches = difflib.get_close_matches(str(name), names, n=n, cutoff=cutoff)
    if not matches:
        matches = [c for c in names if str(name).lower() in c.lower()]
    return matches[:n]


def did_you_mean(name, names, n=5):
    """`" Did you mean: a, b?"` for an unknown `name`, or `""` when no name
    in `names` is close: the end of an unknown-name message.

    Example:

    >>> did_you_mean("genral", ["dot", "general", "concat"])
    ' Did you mean: general?'
    >>> did_you_mean("xyz", ["dot", "general"])
    ''
    """
    return suggestion(close_matches(name, names, n=n))


def suggestion(matches):
    """`" Did you mean: a, b?"` naming `matches`, or `""` for none (for
    callers that find close names their own way)."""
    return f" Did you mean: {', '.join(matches)}?" if matches else ""
