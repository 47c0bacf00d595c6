"""`python -m experiments ARGS` that stops mid-epoch so a test can SIGKILL it.

Usage: `python tests/experiments/pause_child.py MARKER EPOCH STEP ARGS...`:
runs the command line with `ARGS`; when training step `STEP` of epoch
`EPOCH` (both 1-based) begins, writes the file `MARKER` and sleeps until
killed. Everything else is the real command line.
"""

import os
import sys
import time

import keras


class PauseAt(keras.callbacks.Callback):
    def __init__(self, marker, epoch, step):
        super().__init__()
        self.marker, self.epoch, self.step = marker, epoch, step
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if (self._epoch, batch + 1) == (self.epoch, self.step):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            while True:  # until SIGKILL
                time.sleep(1)


def main():
    marker, epoch, step, *argv = sys.argv[1:]
    from experiments import cli
    from experiments import runner

    run = runner.run

    def run_with_pause(*args, callbacks=(), **kwargs):
        pause = PauseAt(marker, int(epoch), int(step))
        return run(*args, callbacks=[*callbacks, pause], **kwargs)

    runner.run = run_with_pause
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
