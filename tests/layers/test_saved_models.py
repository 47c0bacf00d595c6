"""Every layer inside a functional model survives a fresh process.

For each layer: a small functional model is saved as `.keras` and reloaded
in a new Python process with equal outputs (Keras `safe_mode` on), and its
`model.export()` SavedModel is loaded and called by a process that never
imports this project. One child process per family (sequence, vision)
checks all of its models at once.
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
            lambda x: layers.Attention(probability_fn="sparsemax")(
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
    cases.append(
        _sequence_classifier(
            "multi_head_attention_gqa_causal",
            lambda x: layers.MultiHeadAttention(
                num_heads=4, key_dim=4, num_key_value_heads=2
            )(x, x, use_causal_mask=True),
        )
    )
    cases.append(
        _sequence_classifier(
            "multi_head_attention_chunked",
            lambda x: layers.MultiHeadAttention(
                num_heads=2,
                key_dim=4,
                attention_impl="chunked",
                query_chunk_size=2,
                key_chunk_size=2,
            )(x, x),
        )
    )
    cases.append(
        _cross_attention(
            "multi_head_attention_cross", layers.MultiHeadAttention(2, 4)
        )
    )
    cases.append(
        _sequence_classifier(
            "attention_pooling_1d",
            lambda x: layers.AttentionPooling1D(num_heads=2)(x),
        )
    )
    cases.append(
        _sequence_classifier(
            "hard_attention", lambda x: layers.HardAttention()(x, x)
        )
    )
    for style, attention in (
        ("bahdanau", layers.BahdanauAttention(8)),
        ("luong", layers.LuongAttention("general")),
    ):
        cell = layers.AttentionRNNCell(
            keras.layers.LSTMCell(8), attention, attention_style=style
        )
        cases.append(
            _cross_attention(
                f"attention_rnn_{style}",
                lambda dec, enc, c=cell: layers.AttentionRNN(c)(dec, enc),
            )
        )
    return cases


def vision_cases():
    blocks = {
        "squeeze_excite": lambda: layers.SqueezeExcite(reduction=4),
        "channel_attention": lambda: layers.ChannelAttention(reduction=4),
        "spatial_attention": lambda: layers.SpatialAttention(kernel_size=3),
        "cbam": lambda: layers.CBAM(reduction=4, kernel_size=3),
        "eca": lambda: layers.EfficientChannelAttention(),
        "non_local_concat": lambda: layers.NonLocalBlock(
            mode="concat", zero_init=False
        ),
        "non_local_gaussian_sub_sampled": lambda: layers.NonLocalBlock(
            mode="gaussian", sub_sample=True, zero_init=False
        ),
        "self_attention_2d": lambda: layers.SelfAttention2D(num_heads=2),
        "se_channels_first": lambda: _channels_first(
            layers.SqueezeExcite(reduction=4, data_format="channels_first")
        ),
    }
    cases = [_image_model(name, make()) for name, make in blocks.items()]

    def token_model(x):
        x = layers.PatchEmbedding(embed_dim=8, patch_size=2)(x)
        x = layers.PositionEmbedding(use_class_token=True)(x)
        x = layers.MixerBlock(tokens_mlp_dim=8, channels_mlp_dim=8)(x)
        x = layers.GatedMLPBlock(ffn_dim=16)(x)
        return keras.layers.Reshape((17, 8, 1))(x)  # back to an image

    cases.append(_image_model("patch_mixer_gmlp", token_model))
    return cases


def _channels_first(block):
    def apply(x):
        x = keras.layers.Permute((3, 1, 2))(x)
        return keras.layers.Permute((2, 3, 1))(block(x))

    return apply


@pytest.mark.tf_only
@pytest.mark.parametrize("family", ["sequence", "vision"])
def test_every_layer_reloads_and_serves_in_fresh_processes(family, tmp_path):
    # Two families, two tests: pytest-xdist runs them side by side.
    cases = sequence_cases() if family == "sequence" else vision_cases()
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names)
    check_fresh_process_round_trips(cases, tmp_path)
