"""`python -m experiments ARGS` that stops inside one write so a test can
SIGKILL it there.

Usage: `python tests/faults/kill_child.py MARKER STAGE ARGS...`. STAGE is
`checkpoint` (the epoch-2 checkpoint), `model.keras`, `export` or
`metrics`: once that file (or SavedModel folder) is completely written
under its temporary name, but before it is renamed into place, the child
writes the file `MARKER` and sleeps until killed.
"""

import os
import sys
import time

import keras

from experiments import atomic

FILES = {
    "checkpoint": "epoch-0002.weights.h5",
    "model.keras": "model.keras",
    "metrics": "metrics.json",
}


def pause(marker):
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    while True:  # until SIGKILL
        time.sleep(1)


def main():
    marker, stage, *argv = sys.argv[1:]
    if stage == "export":
        archive_class = type(keras.export.ExportArchive())
        write_out = archive_class.write_out

        def write_then_pause(archive, path, *args, **kwargs):
            write_out(archive, path, *args, **kwargs)
            pause(marker)

        archive_class.write_out = write_then_pause
    else:
        fsync_file = atomic.fsync_file

        def fsync_then_pause(path):
            fsync_file(path)
            if path.endswith(FILES[stage]):
                pause(marker)

        atomic.fsync_file = fsync_then_pause
    from experiments import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
