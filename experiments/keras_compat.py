"""Fixes of two Keras 3 bugs that break `fit` under multi-worker training.

Keras 3 (up to at least 3.15) cannot `fit` with a
`tf.distribute.MultiWorkerMirroredStrategy` of more than one worker
(keras-team/keras#20585, tensorflow/tensorflow#72388):

1. `TensorFlowTrainer._maybe_symbolic_build` reduces the first *input
   batch* across replicas with `strategy.reduce("MEAN", batch, axis=None)`,
   which the collective strategy cannot do for a nested batch (`ValueError:
   Attempt to convert a value (PerReplica...)`). It only needs the batch's
   shapes and dtypes: the fix takes this worker's local value instead.
2. `reduce_per_replica` reduces every scalar log with `axis=0` in
   multi-worker mode (`Invalid reduction dimension 0 for input with 0
   dimensions`). The fix reduces scalars with `axis=None` (the mean over
   replicas, as Keras does for the other strategies).

Both replacements defer to the original Keras code for every other
strategy, and are installed only when a multi-worker strategy is created
(`install()` is idempotent). The multi-worker test
(`tests/experiments/test_distributed.py`) proves them; drop this module
once Keras fixes the issue.
"""

import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tf_trainer

_installed = False


def _multi_worker(strategy):
    return (
        strategy is not None
        and tf_trainer._collective_all_reduce_multi_worker(strategy)
    )


def _local(strategy, value):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def install():
    """Installs the two fixes (once per process)."""
    global _installed
    if _installed:
        return
    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not _multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            rank = _local(strategy, value).shape.rank
            return strategy.reduce("MEAN", value, axis=0 if rank else None)

        return tree.map_structure(reduce, values)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not _multi_worker(strategy):
            return original_build(
                self, iterator=iterator, data_batch=data_batch
            )
        for _, _, batches in iterator:
            batch = next(batches)
            data_batch = tree.map_structure(
                lambda value: _local(strategy, value), batch
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _installed = True
