"""TensorFlow's stateless random ops for a whole batch of seeds at once.

`tf.random.stateless_uniform(shape, seed)` and friends take one `[2]` seed,
so an input pipeline that gives every example its own seed (for
augmentation that is identical after a resume or on any number of workers)
has to call them once per example, in a per-example `map`. On small
examples that per-example call dominates the whole pipeline.

The functions here take `seeds [n, 2]` and return, for every row, exactly
the numbers TensorFlow's op returns for that row's seed, computed with one
set of element-wise ops over the batch. They re-implement the CPU
algorithm TensorFlow picks for `alg="auto_select"`: Philox-4x32-10
(Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3",
https://doi.org/10.1145/2063384.2063405), with TensorFlow's seed
scrambling (`StatelessRandomGetKeyCounter`) and its conversions of the
32-bit words to integers and floats. The tests compare every function
with TensorFlow's op row by row.

The arithmetic runs in NumPy (`random_words`, `split`, `as_uniform_int`,
`as_uniform`; the `stateless_*` functions wrap them in one
`tf.numpy_function` each, and a pipeline can compose them in one): as
TensorFlow ops the ~600 element-wise ops of the Philox rounds make a
function graph that `tf.data` re-optimises for every new iterator (each
epoch), which costs more than the per-example ops saved. Words are held as
`uint64` arrays with values below 2**32, so a 32 x 32 -> 64-bit product is
one multiplication.
"""

import numpy as np
import tensorflow as tf

_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
# Philox-4x32 multipliers and Weyl key increments.
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
# The fixed key TensorFlow scrambles a seed with (0x02461E293EC8F720).
_SCRAMBLE_KEY = (np.uint64(0x3EC8F720), np.uint64(0x02461E29))
_ROUNDS = 10
INT32_MAX = 2**31 - 1


def _philox(counter, key):
    """One Philox-4x32-10 block: 4 words of `counter`, 2 of `key`."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(_ROUNDS):
        p0 = c0 * _M0
        p1 = c2 * _M1
        c0, c1, c2, c3 = (
            (p1 >> _SHIFT) ^ c1 ^ k0,
            p1 & _MASK,
            (p0 >> _SHIFT) ^ c3 ^ k1,
            p0 & _MASK,
        )
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


def _words(x):
    """The low and high 32-bit words of int64 values (two's complement)."""
    u = np.asarray(x, np.int64).view(np.uint64)
    return u & _MASK, u >> _SHIFT


def random_words(seeds, count):
    """`[n, count]` uint64: the first `count` 32-bit Philox outputs of each
    `[2]` int64 seed row (NumPy), the stream behind every stateless op.

    TensorFlow scrambles the seed (as the counter) with a fixed key into
    the key and counter of the stream; block `j` of 4 words then uses that
    counter plus `j` (its low word starts at zero, so no carry occurs).
    All blocks run as one vectorised Philox call.
    """
    seeds = np.asarray(seeds, np.int64).reshape(-1, 2)
    counter = (*_words(seeds[:, 0]), *_words(seeds[:, 1]))
    mix = _philox(counter, _SCRAMBLE_KEY)
    blocks = (count + 3) // 4
    lanes = np.repeat(np.arange(blocks, dtype=np.uint64), len(seeds))
    words = _philox(
        (lanes, np.zeros_like(lanes), *(np.tile(m, blocks) for m in mix[2:])),
        tuple(np.tile(m, blocks) for m in mix[:2]),
    )
    # [4, blocks * n] -> [n, blocks * 4]
    words = np.stack(words).reshape(4, blocks, -1).transpose(2, 1, 0)
    return words.reshape(len(seeds), -1)[:, :count]


def split(seeds, num=2):
    """`[n, num, 2]` int64 (NumPy): row `i` is
    `tf.random.experimental.stateless_split(seeds[i], num)`."""
    words = random_words(seeds, 4 * num)
    values = words[:, 0::2] | (words[:, 1::2] << _SHIFT)
    return values.view(np.int64).reshape(-1, num, 2)


def as_uniform_int(words, maxval):
    """int32 in `[0, maxval)` from `random_words` (NumPy), as
    `tf.random.stateless_uniform(..., minval=0, maxval, dtype=tf.int32)`."""
    return (words % np.uint64(maxval)).astype(np.int32)


def as_uniform(words):
    """float32 in `[0, 1)` from `random_words` (NumPy), as
    `tf.random.stateless_uniform`: the low 23 bits as the mantissa of a
    float in `[1, 2)`, minus one."""
    bits = (words & np.uint64(0x7FFFFF)) | np.uint64(0x3F800000)
    return bits.astype(np.uint32).view(np.float32) - np.float32(1.0)


def _numpy_op(fn, seeds, dtype, trailing):
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    out = tf.numpy_function(fn, [seeds], dtype, stateful=False)
    out.set_shape([seeds.shape[0], *trailing])
    return out


def stateless_split(seeds, num=2):
    """`[n, num, 2]` int64 tensor: row `i` is
    `tf.random.experimental.stateless_split(seeds[i], num)`."""
    return _numpy_op(lambda s: split(s, num), seeds, tf.int64, (num, 2))


def stateless_uniform_int(seeds, size, maxval):
    """`[n, size]` int32 tensor: row `i` is `tf.random.stateless_uniform(
    [size], seeds[i], minval=0, maxval=maxval, dtype=tf.int32)`."""

    def uniform_int(seeds):
        return as_uniform_int(random_words(seeds, size), maxval)

    return _numpy_op(uniform_int, seeds, tf.int32, (size,))


def stateless_uniform(seeds):
    """`[n]` float32 tensor: entry `i` is `tf.random.stateless_uniform([],
    seeds[i])`, uniform in `[0, 1)`."""

    def uniform(seeds):
        return as_uniform(random_words(seeds, 1)[:, 0])

    return _numpy_op(uniform, seeds, tf.float32, ())
