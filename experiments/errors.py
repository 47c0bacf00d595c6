"""The exception types of problems a user can fix (exit status 2) and the
run interruption; did-you-mean helpers for their messages."""

import difflib


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


def close_matches(name, candidates, n=5):
    """Close spellings of `name` among `candidates` (for error messages)."""
    candidates = [str(c) for c in candidates]
    matches = difflib.get_close_matches(str(name), candidates, n=n, cutoff=0.6)
    if not matches:
        # Substring hits help with partial names like "resnet" or "cifar".
        matches = [c for c in candidates if str(name).lower() in c.lower()]
    return matches[:n]


def unknown_name_error(kind, name, candidates, listing_hint):
    """A `UserError` for an unknown `kind` name, with close matches."""
    matches = close_matches(name, candidates)
    hint = f" Did you mean: {', '.join(matches)}?" if matches else ""
    return UserError(f"Unknown {kind} {name!r}.{hint} {listing_hint}")
