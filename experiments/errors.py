"""The one exception type for mistakes a user can fix (exit status 2)."""

import functools


class UserError(Exception):
    """A bad name, key, value, path or missing data: reported without a
    traceback by the command line, which exits with status 2."""

    exit_code = 2


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
