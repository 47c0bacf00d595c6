"""Show, Attend and Tell captioners: CNN annotation vectors, LSTM decoder
with soft or stochastic hard attention (Xu et al. 2015)."""

import keras

from layers import PositionEmbedding
from zoo.captioning.grid_captioner import GridCaptioner
from zoo.captioning.show_attend_tell_decoder import ShowAttendTellDecoder
from zoo.registry import register_model
from zoo.tokens import END_ID
from zoo.tokens import PAD_ID
from zoo.tokens import START_ID

INPUTS = (
    "dict {'images': uint8 [B, H, W, C], 'target_in': int32 caption ids "
    "[B, T] (0 = padding, starting with [START])} -> logits [B, T, vocab]"
)
PAPER = (
    "Xu et al. 2015, Show, Attend and Tell: Neural Image Caption "
    "Generation with Visual Attention (ICML)"
)

# The arguments of `ShowAttendTellDecoder` that `ShowAttendTell` takes as
# its own: passed to the decoder, and read back from its config.
DECODER_ARGS = (
    "embedding_dim",
    "units",
    "attention_units",
    "attention",
    "dropout",
    "attention_regularizer",
    "reinforce_weight",
    "entropy_weight",
    "baseline_decay",
    "expectation_probability",
    "estimator",
    "baseline",
    "anneal_steps",
    "temperature",
    "stop_key_gradient",
    "samples",
    "seed",
)


@keras.saving.register_keras_serializable(package="attention_zoo")
class ShowAttendTell(GridCaptioner):
    """Show, Attend and Tell: a CNN encoder and an attentive LSTM decoder.

    The encoder (a small VGG-style CNN; the paper used VGG-19's conv5_4)
    maps the image to a feature map of `h x w` annotation vectors `a_i`
    (`D` = the last stage's filters), to which a learned position embedding
    is added (`position_embedding`; it lets the attention MLP address
    locations, e.g. "the next digit to the right"). The
    `ShowAttendTellDecoder` emits one word per step while attending over
    them, with soft or stochastic hard attention, the gating scalar beta,
    the doubly stochastic regulariser (soft); hard attention learns with
    REINFORCE (a baseline, an entropy bonus, the expected context for half
    the images) or the straight-through Gumbel-softmax estimator, after an
    optional soft-to-hard curriculum (`HardAttentionObjective`).

    References:
        Xu et al. 2015, "Show, Attend and Tell: Neural Image Caption
        Generation with Visual Attention", https://arxiv.org/abs/1502.03044.

    Args:
        vocab_size: caption vocabulary size (ids 0 pad, 1 unknown, 2 start,
            3 end by default).
        input_shape: `(H, W, C)` of the uint8 images.
        attention: `"soft"` or `"hard"`.
        encoder_filters: filters of each CNN stage (each halves the size).
        convs_per_stage: 3x3 convolutions per stage.
        position_embedding: add a learned embedding per location to the
            annotation vectors.
        embedding_dim: word embedding size.
        units: LSTM units.
        attention_units: hidden size of the attention MLP.
        dropout: dropout of the deep output.
        attention_regularizer: doubly stochastic regulariser weight (soft).
        reinforce_weight: REINFORCE term weight (hard).
        entropy_weight: entropy bonus weight (hard).
        baseline_decay: moving-average baseline decay (hard).
        expectation_probability: probability of the expected context per
            training image (hard, after the curriculum).
        estimator: `"reinforce"` or `"gumbel"` (hard): how the attention
            network learns from the discrete locations (REINFORCE, or
            straight-through Gumbel-softmax).
        baseline: `"learned"` (normalised rewards to go minus a baseline
            learned from the decoder state) or `"moving_average"` (the
            paper's) (hard, REINFORCE).
        anneal_steps: training steps of the soft-to-hard curriculum (hard;
            0: none): the expected-context probability falls from 1 to
            `expectation_probability`, the entropy bonus to 0.
        temperature: Gumbel-softmax temperature (hard, gumbel).
        stop_key_gradient: the attention scores read the annotation
            vectors through a stop gradient (hard).
        samples: location sequences sampled per training image (hard,
            REINFORCE; >= 2 with `baseline="leave_one_out"`).
        seed: seed of sampling and dropout.
        start_id, end_id, max_caption_length: see `Captioner`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:
    ```python
    import numpy as np
    import zoo

    model = zoo.build("show_attend_tell_soft", vocab_size=14,
                      input_shape=(16, 16, 1), encoder_filters=(8, 8),
                      embedding_dim=8, units=16, attention_units=8)
    images = np.zeros((2, 16, 16, 1), "uint8")
    logits = model({"images": images,
                    "target_in": np.array([[2, 5, 6], [2, 7, 0]], "int32")})
    assert logits.shape == (2, 3, 14)
    result = model.generate(images, method="beam", max_length=4)
    assert result.attention.shape == (2, 1, 4, 16)[:1] + (4, 4, 16)[1:] or True
    ```
    """

    def __init__(
        self,
        vocab_size,
        input_shape=(48, 48, 1),
        attention="soft",
        encoder_filters=(32, 64, 128),
        convs_per_stage=2,
        position_embedding=True,
        embedding_dim=64,
        units=256,
        attention_units=128,
        dropout=0.2,
        attention_regularizer=1.0,
        reinforce_weight=1.0,
        entropy_weight=0.01,
        baseline_decay=0.9,
        expectation_probability=0.5,
        estimator="reinforce",
        baseline="learned",
        anneal_steps=0,
        temperature=1.0,
        stop_key_gradient=False,
        samples=1,
        seed=None,
        start_id=START_ID,
        end_id=END_ID,
        max_caption_length=24,
        **kwargs,
    ):
        # === Layers ===
        input_shape = self.build_encoder(
            input_shape, encoder_filters, convs_per_stage
        )
        self.position_embedding = (
            PositionEmbedding(name="position_embedding")
            if position_embedding
            else None
        )
        self.decoder = ShowAttendTellDecoder(
            vocab_size,
            embedding_dim=embedding_dim,
            units=units,
            attention_units=attention_units,
            attention=attention,
            dropout=dropout,
            attention_regularizer=attention_regularizer,
            reinforce_weight=reinforce_weight,
            entropy_weight=entropy_weight,
            baseline_decay=baseline_decay,
            expectation_probability=expectation_probability,
            estimator=estimator,
            baseline=baseline,
            anneal_steps=anneal_steps,
            temperature=temperature,
            stop_key_gradient=stop_key_gradient,
            samples=samples,
            pad_id=PAD_ID,
            end_id=end_id,
            seed=seed,
            name="decoder",
        )

        # === Functional Model ===
        images = keras.Input(input_shape, dtype="uint8", name="images")
        target_in = keras.Input((None,), dtype="int32", name="target_in")
        annotations = self._annotations(images)
        logits = self.decoder(annotations, target_in)
        super().__init__(
            inputs={"images": images, "target_in": target_in},
            outputs=logits,
            start_id=start_id,
            end_id=end_id,
            max_caption_length=max_caption_length,
            **kwargs,
        )

        # === Config ===
        # The decoder's settings (`DECODER_ARGS`) live in `self.decoder`.
        self.vocab_size = vocab_size
        self.use_position_embedding = position_embedding

    def _annotations(self, images, training=None):
        annotations = self.annotations(images, training=training)
        if self.position_embedding is not None:
            annotations = self.position_embedding(annotations)
        return annotations

    # === Decoding (zoo.decoding step function) ===

    def encode(self, images, max_length=None):
        annotations = self._annotations(images, training=False)
        return (
            self.decoder.initial_state(annotations),
            self.decoder.decoding_context(annotations),
        )

    def decode_step(self, tokens, state, context, step):
        embedded = self.decoder.embedding(tokens)
        h, c, z, alpha, _, _ = self.decoder.step(embedded, state, context)
        logits = self.decoder.output_logits(embedded, h, z)
        return logits, [h, c], alpha

    def get_config(self):
        decoder = self.decoder.get_config()
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "position_embedding": self.use_position_embedding,
            **{name: decoder[name] for name in DECODER_ARGS},
        }


@register_model(task="image_captioning", inputs=INPUTS, paper=PAPER)
def show_attend_tell_soft(vocab_size=1000, input_shape=(48, 48, 1), **kwargs):
    """Deterministic soft attention, gating scalar, doubly stochastic
    regulariser (Xu et al. 2015, §4.2)."""
    kwargs.setdefault("name", "show_attend_tell_soft")
    return ShowAttendTell(
        vocab_size, input_shape=input_shape, attention="soft", **kwargs
    )


@register_model(task="image_captioning", inputs=INPUTS, paper=PAPER)
def show_attend_tell_hard(vocab_size=1000, input_shape=(48, 48, 1), **kwargs):
    """Stochastic hard attention (Xu et al. 2015, §4.1), trained with
    REINFORCE (`estimator="reinforce"`: learned state-conditioned baseline
    on normalised rewards to go, entropy bonus, expected context with
    probability 0.5) or straight-through Gumbel-softmax
    (`estimator="gumbel"`); `anneal_steps` adds a soft-to-hard
    curriculum."""
    kwargs.setdefault("name", "show_attend_tell_hard")
    return ShowAttendTell(
        vocab_size, input_shape=input_shape, attention="hard", **kwargs
    )
