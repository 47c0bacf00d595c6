"""`compute_once`: an expensive fixture value computed once per test session,
also under pytest-xdist (where every worker process would otherwise build
its own copy of a module-scoped fixture: module tests are spread over the
workers). The first worker computes and stores the JSON result in the
session's shared temporary folder; the others wait for it and read it."""

import fcntl
import json
import os


def compute_once(tmp_path_factory, name, compute):
    """`compute()` (JSON-serialisable) run once per session.

    Args:
        tmp_path_factory: pytest's fixture.
        name: unique file stem of the stored result.
        compute: zero-argument function returning the value.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session folder, shared by the workers
    result = base / f"{name}.json"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if result.exists():
            return json.loads(result.read_text())
        value = compute()
        result.write_text(json.dumps(value))
        return value
