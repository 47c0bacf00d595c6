"""`TrainStream`: training batches as a pure function of (seed, epoch),
split exactly between `tf.distribute` replicas and input pipelines."""

import numpy as np
import pytest
import tensorflow as tf

from experiments import data as data_lib

NUM, BATCH = 52, 8  # 6 full global batches; 4 examples dropped per epoch


def _stream(seed=0, **kwargs):
    return data_lib.TrainStream(
        tf.data.Dataset.range(NUM).cache(),
        NUM,
        BATCH,
        seed=seed,
        shuffle_buffer=64,
        **kwargs,
    )


def _batches(ds):
    return [np.asarray(b).tolist() for b in ds]


def _context(pipelines, pipeline, replicas):
    return tf.distribute.InputContext(
        num_input_pipelines=pipelines,
        input_pipeline_id=pipeline,
        num_replicas_in_sync=replicas,
    )


def test_epoch_is_a_permutation_of_full_global_batches():
    batches = _batches(_stream().epoch(0))
    assert len(batches) == NUM // BATCH
    assert all(len(b) == BATCH for b in batches)
    flat = sum(batches, [])
    assert len(set(flat)) == len(flat) and set(flat) <= set(range(NUM))


def test_same_seed_same_batches_other_seed_or_epoch_other_order():
    assert _batches(_stream(3).epoch(1)) == _batches(_stream(3).epoch(1))
    assert _batches(_stream(3).epoch(1)) != _batches(_stream(4).epoch(1))
    assert _batches(_stream(3).epoch(1)) != _batches(_stream(3).epoch(2))


@pytest.mark.parametrize("pipelines, replicas", [(1, 2), (2, 2), (2, 4)])
def test_replicas_split_every_global_batch_exactly(pipelines, replicas):
    stream = _stream(seed=5)
    whole = _batches(stream.epoch(2))
    # Per pipeline: its replicas' batches in turn, step after step.
    per_pipeline = [
        _batches(stream.epoch(2, _context(pipelines, p, replicas)))
        for p in range(pipelines)
    ]
    local = replicas // pipelines
    for step, expected in enumerate(whole):
        parts = []
        for batches in per_pipeline:
            parts += batches[step * local : (step + 1) * local]
        assert all(len(p) == BATCH // replicas for p in parts)
        assert sum(parts, []) == expected


def test_resumed_dataset_continues_with_the_same_batches():
    stream = _stream(seed=1)
    full = _batches(stream.dataset(None, 0, 3))
    resumed = _batches(stream.dataset(None, 1, 3))
    steps = stream.steps_per_epoch
    assert resumed == full[steps:]


def test_augmentation_seeds_do_not_depend_on_sharding():
    def prepare(example, seed):
        noise = tf.random.stateless_uniform(
            [], seed, maxval=1000, dtype=tf.int64
        )
        return tf.stack([example, noise])

    stream = _stream(seed=2, prepare=prepare)
    whole = _batches(stream.epoch(0))
    halves = [_batches(stream.epoch(0, _context(2, p, 2))) for p in range(2)]
    for step, expected in enumerate(whole):
        assert halves[0][step] + halves[1][step] == expected


def test_sort_windows_pads_less_and_keeps_the_examples():
    lengths = [(7 * i) % 13 + 1 for i in range(NUM)]
    examples = tf.data.Dataset.from_generator(
        lambda: (tf.range(n) + 1 for n in lengths),  # no zeros: 0 = padding
        output_signature=tf.TensorSpec([None], tf.int32),
    ).cache()

    def stream(group):
        return data_lib.TrainStream(
            examples,
            NUM,
            BATCH,
            seed=0,
            batch=lambda ds, size: ds.padded_batch(size, drop_remainder=True),
            group=group,
        )

    def summary(s):
        batches = [np.asarray(b) for b in s.epoch(0)]
        real = sorted(int(np.count_nonzero(row)) for b in batches for row in b)
        padded = sum(b.size for b in batches)
        return real, padded

    sorted_real, sorted_padded = summary(
        stream(data_lib.sort_windows(BATCH, 3, lambda x: tf.shape(x)[0]))
    )
    plain_real, plain_padded = summary(stream(None))
    assert sorted_real == plain_real  # the same 48 examples
    assert sorted_padded < plain_padded


def _noisy(example, seed):
    noise = tf.random.stateless_uniform([], seed, maxval=1000, dtype=tf.int64)
    return tf.stack([example, noise])


def _noisy_batch(examples, seeds):
    noise = tf.stack(
        [
            tf.random.stateless_uniform([], s, maxval=1000, dtype=tf.int64)
            for s in tf.unstack(seeds)
        ]
    )
    return tf.stack([examples, noise], axis=-1)


@pytest.mark.parametrize(
    "num", [NUM, 61]
)  # 61: a spare slot where a pipeline takes 4
@pytest.mark.parametrize(
    "pipelines, replicas", [(1, 1), (1, 2), (2, 2), (2, 4)]
)
def test_prepare_batch_gives_the_per_example_batches(num, pipelines, replicas):
    def stream(**kwargs):
        return data_lib.TrainStream(
            tf.data.Dataset.range(num).cache(),
            num,
            BATCH,
            seed=3,
            shuffle_buffer=64,
            **kwargs,
        )

    per_example, batched = (
        stream(prepare=_noisy),
        stream(prepare_batch=_noisy_batch),
    )
    for p in range(pipelines):
        context = _context(pipelines, p, replicas)
        for epoch in (0, 1):
            expected = _batches(per_example.epoch(epoch, context))
            assert _batches(batched.epoch(epoch, context)) == expected
            assert len(expected) == (num // BATCH) * (replicas // pipelines)


def test_prepare_batch_with_group_and_its_batching_rule():
    def group(ds, epoch_seed):
        # Reverse each window of 16: a pure function of the stream.
        return ds.batch(16).map(lambda p, e: (p[::-1], e[::-1])).unbatch()

    per_example = _stream(seed=4, prepare=_noisy, group=group)
    batched = _stream(seed=4, prepare_batch=_noisy_batch, group=group)
    assert _batches(batched.epoch(1)) == _batches(per_example.epoch(1))
    with pytest.raises(ValueError, match="default batching"):
        _stream(
            prepare_batch=_noisy_batch, batch=data_lib._default_batch
        ).epoch(0)
