"""The exception types of problems a user can fix (exit status 2), the
run interruption, and the unknown-name error of the registries."""

import functools


class UserError(Exception):
    """A bad name, key, value, path or missing data: reported without a
    traceback by the command line, which exits with status 2."""

    exit_code = 2


class DiskFullError(UserError):
    """A write failed for lack of space or quota (ENOSPC/EDQUOT); the
    partial file was removed and the previous content is intact."""


class DamagedDataError(UserError):
    """A prepared dataset file is truncated or garbled."""


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite; training was stopped."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message names the run folder to resume."""


@functools.cache
def _unknown_name_type():
    # `layers` imports Keras, which `list`, `show` and `--help` never load:
    # it is imported on this error path only.
    from layers.naming import UnknownNameError

    return type(
        "UnknownNameError",
        (UserError, UnknownNameError),
        {
            "__module__": __name__,
            "__doc__": "An unknown name a user gave: a `UserError` of the "
            "project's one unknown-name type (`layers.naming`).",
        },
    )


def unknown_name_error(kind, name, candidates, listing_hint, matches=None):
    """A `UserError` for an unknown `kind` name, with close matches.

    It is also a `layers.naming.UnknownNameError`, the type every registry
    of the project raises for a name it does not know.

    Args:
        kind: what is named ("experiment", "dataset", "config key").
        name: the unknown name.
        candidates: the known names (close ones are suggested).
        listing_hint: the sentence that ends the message (where to find
            all names).
        matches: the suggestions, when the caller finds them itself
            (default: `layers.naming.close_matches(name, candidates)`).
    """
    from layers import naming  # on the error path only, as above

    if matches is None:
        matches = naming.close_matches(name, candidates)
    return _unknown_name_type()(
        f"Unknown {kind} {name!r}.{naming.suggestion(matches)} {listing_hint}"
    )
