"""NumPy references for the vision blocks' tests (float64, channels_last)."""

import math

import numpy as np
from keras import ops


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def weight(variable):
    return to_numpy(variable)


def randomize_weights(layer, seed=0, scale=0.5):
    """Gives every weight of a built layer random values (non-zero biases)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.normal(size=tuple(w.shape)) * scale
        if "variance" in w.path:
            value = np.abs(value) + 0.5
        w.assign(value.astype(w.dtype))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hard_sigmoid(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def relu(x):
    return np.maximum(x, 0.0)


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def dense(x, layer, activation=None):
    y = x @ weight(layer.kernel)
    if layer.bias is not None:
        y = y + weight(layer.bias)
    return activation(y) if activation is not None else y


def conv2d_same(x, kernel, bias=None):
    """'Same' stride-1 cross-correlation: x [B, H, W, Ci], k [k, k, Ci, Co]."""
    k = kernel.shape[0]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    b, h, w, _ = x.shape
    out = np.zeros((b, h, w, kernel.shape[-1]))
    for i in range(k):
        for j in range(k):
            out += np.einsum(
                "bhwc,co->bhwo", xp[:, i : i + h, j : j + w], kernel[i, j]
            )
    return out if bias is None else out + bias


def conv1d_same(x, kernel):
    """Stride-1 'same' 1-D cross-correlation of x [B, L] with kernel [k]."""
    k = kernel.shape[0]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad)))
    length = x.shape[1]
    return sum(kernel[i] * xp[:, i : i + length] for i in range(k))


def max_pool_same(x, pool):
    """Max pooling with window = stride = pool and TF 'same' padding."""
    b, h, w, c = x.shape
    hp, wp = -(-h // pool), -(-w // pool)
    padded = np.full((b, hp * pool, wp * pool, c), -np.inf)
    padded[:, :h, :w] = x
    return padded.reshape(b, hp, pool, wp, pool, c).max(axis=(2, 4))


def se_gate(x, reduce, expand, gate=sigmoid, use_max=False):
    """SE / CBAM channel gate [B, C] of channels_last x."""
    act = relu

    def mlp(d):
        return dense(dense(d, reduce, act), expand)

    logits = mlp(x.mean(axis=(1, 2)))
    if use_max:
        logits = logits + mlp(x.max(axis=(1, 2)))
    return gate(logits)


def spatial_map(x, conv, gate=sigmoid):
    """CBAM spatial map [B, H, W, 1] of channels_last x."""
    desc = np.concatenate(
        [x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], axis=-1
    )
    bias = weight(conv.bias) if conv.bias is not None else None
    return gate(conv2d_same(desc, weight(conv.kernel), bias))
