"""Every layer inside a functional model survives a fresh process.

For each layer: a small functional model is saved as `.keras` and reloaded
in a new Python process with equal outputs (Keras `safe_mode` on), and its
`model.export()` SavedModel is loaded and called by a process that never
imports this project. One child process checks all models at once.
"""

import keras
import numpy as np
import pytest

import layers
from tests.serving import check_fresh_process_round_trips

RNG = np.random.default_rng(0)
VOCAB = 50


def _tokens(batch=2, length=6):
    x = RNG.integers(1, VOCAB, size=(batch, length)).astype("int32")
    x[0, -2:] = 0  # padding, masked by Embedding(mask_zero=True)
    return x


def _embedded(length=None, name="tokens"):
    tokens = keras.Input((length,), dtype="int32", name=name)
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(tokens)
    return tokens, x


def _sequence_classifier(name, make_output):
    tokens, x = _embedded()
    out = make_output(x)
    out = (
        keras.layers.GlobalAveragePooling1D()(out)
        if len(out.shape) == 3
        else out
    )
    probs = keras.layers.Dense(3, activation="softmax")(out)
    return name, keras.Model(tokens, probs), [_tokens()]


def _cross_attention(name, layer):
    src, enc = _embedded(name="source")
    tgt, dec = _embedded(name="target")
    context = layer(dec, enc)
    probs = keras.layers.Dense(VOCAB, activation="softmax")(context)
    model = keras.Model([src, tgt], probs)
    return name, model, [_tokens(length=7), _tokens(length=5)]


def _image_model(name, block, size=8, channels=8):
    images = keras.Input((size, size, 3), name="images")
    x = keras.layers.Conv2D(channels, 3, padding="same")(images)
    x = block(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    probs = keras.layers.Dense(3, activation="softmax")(x)
    data = RNG.normal(size=(2, size, size, 3)).astype("float32")
    return name, keras.Model(images, probs), [data]


def sequence_cases():
    scores = {
        "dot": {},
        "scaled_dot": {},
        "general": {},
        "additive": {"units": 4},
        "cosine": {},
        "location": {"max_length": 6},
    }
    cases = [
        _sequence_classifier(
            f"attention_{score}",
            lambda x, s=score, kw=kwargs: layers.Attention(
                score=s, score_kwargs=kw
            )(x, x),
        )
        for score, kwargs in scores.items()
    ]
    cases.append(
        _sequence_classifier(
            "attention_sparsemax_causal",
            lambda x: layers.Attention(normalize="sparsemax")(
                x, x, use_causal_mask=True
            ),
        )
    )
    cases.append(
        _cross_attention(
            "bahdanau", layers.BahdanauAttention(8, normalize=True)
        )
    )
    cases.append(
        _cross_attention("luong_general", layers.LuongAttention("general"))
    )
    cases.append(
        _cross_attention(
            "luong_local_p",
            layers.LuongAttention("concat", units=4, window=2, scale=True),
        )
    )
    return cases


def vision_cases():
    return []


@pytest.mark.tf_only
def test_every_layer_reloads_and_serves_in_fresh_processes(tmp_path):
    cases = sequence_cases() + vision_cases()
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names)
    check_fresh_process_round_trips(cases, tmp_path)
