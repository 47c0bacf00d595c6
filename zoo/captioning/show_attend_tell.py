"""Show, Attend and Tell captioners: CNN annotation vectors, LSTM decoder
with soft or stochastic hard attention (Xu et al. 2015)."""

import keras

from layers import PositionEmbedding
from layers.validation import check_positive_int
from zoo.captioning.captioner import Captioner
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


def _check_shape(input_shape):
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive "
            f"integers. Received: input_shape={input_shape!r}"
        )
    return shape


def _check_filters(filters):
    filters = tuple(filters)
    if not filters or not all(
        isinstance(f, int) and not isinstance(f, bool) and f > 0
        for f in filters
    ):
        raise ValueError(
            "`encoder_filters` must be a non-empty list of positive "
            f"integers. Received: encoder_filters={filters!r}"
        )
    return filters


def check_encoder(input_shape, encoder_filters, convs_per_stage):
    """Validated `(input_shape, encoder_filters)` of `cnn_encoder` (tuples);
    `ValueError` naming the bad argument otherwise."""
    input_shape = _check_shape(input_shape)
    encoder_filters = _check_filters(encoder_filters)
    check_positive_int("convs_per_stage", convs_per_stage)
    annotation_grid(input_shape, encoder_filters)
    return input_shape, encoder_filters


def annotation_grid(input_shape, encoder_filters):
    """`(rows, cols)` of `cnn_encoder`'s feature map (each stage halves)."""
    stages = len(encoder_filters)
    rows = input_shape[0] // 2**stages
    cols = input_shape[1] // 2**stages
    if rows < 1 or cols < 1:
        raise ValueError(
            f"{stages} pooling stages shrink a {input_shape[0]}x"
            f"{input_shape[1]} image to nothing: use fewer "
            f"encoder_filters or larger images. Received: "
            f"input_shape={input_shape}, encoder_filters={encoder_filters}"
        )
    return rows, cols


def cnn_encoder(input_shape, filters, convs_per_stage, name="encoder"):
    """Small VGG-style CNN: per stage `convs_per_stage` 3x3 conv-BN-ReLU
    layers, then 2x2 max pooling; returns the feature map `[h, w, D]`
    (`h = H / 2^stages`) as a `keras.Sequential` taking uint8 images."""
    stack = [
        keras.Input(input_shape, dtype="uint8", name="images"),
        keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale"),
    ]
    for stage, width in enumerate(filters, start=1):
        for i in range(1, convs_per_stage + 1):
            stack += [
                keras.layers.Conv2D(
                    width,
                    3,
                    padding="same",
                    use_bias=False,
                    name=f"stage{stage}_conv{i}",
                ),
                keras.layers.BatchNormalization(name=f"stage{stage}_bn{i}"),
                keras.layers.ReLU(name=f"stage{stage}_relu{i}"),
            ]
        stack.append(keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool"))
    return keras.Sequential(stack, name=name)


@keras.saving.register_keras_serializable(package="attention_zoo")
class ShowAttendTell(Captioner):
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
        input_shape, encoder_filters = check_encoder(
            input_shape, encoder_filters, convs_per_stage
        )
        rows, cols = annotation_grid(input_shape, encoder_filters)

        # === Layers ===
        self.encoder = cnn_encoder(
            input_shape, encoder_filters, convs_per_stage
        )
        self.to_annotations = keras.layers.Reshape(
            (rows * cols, encoder_filters[-1]), name="annotations"
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
        self.vocab_size = vocab_size
        self.image_shape = input_shape
        self.attention = attention
        self.encoder_filters = encoder_filters
        self.convs_per_stage = convs_per_stage
        self.use_position_embedding = position_embedding
        self.embedding_dim = embedding_dim
        self.units = units
        self.attention_units = attention_units
        self.dropout = dropout
        self.attention_regularizer = attention_regularizer
        self.reinforce_weight = reinforce_weight
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.expectation_probability = expectation_probability
        self.estimator = estimator
        self.baseline = baseline
        self.anneal_steps = anneal_steps
        self.temperature = temperature
        self.stop_key_gradient = stop_key_gradient
        self.samples = samples
        self.seed = seed
        self._grid = (rows, cols)

    def _annotations(self, images, training=None):
        annotations = self.to_annotations(
            self.encoder(images, training=training)
        )
        if self.position_embedding is not None:
            annotations = self.position_embedding(annotations)
        return annotations

    # === Decoding (zoo.decoding step function) ===

    @property
    def feature_grid(self):
        return self._grid

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
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "input_shape": list(self.image_shape),
            "attention": self.attention,
            "encoder_filters": list(self.encoder_filters),
            "convs_per_stage": self.convs_per_stage,
            "position_embedding": self.use_position_embedding,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "attention_regularizer": self.attention_regularizer,
            "reinforce_weight": self.reinforce_weight,
            "entropy_weight": self.entropy_weight,
            "baseline_decay": self.baseline_decay,
            "expectation_probability": self.expectation_probability,
            "estimator": self.estimator,
            "baseline": self.baseline,
            "anneal_steps": self.anneal_steps,
            "temperature": self.temperature,
            "stop_key_gradient": self.stop_key_gradient,
            "samples": self.samples,
            "seed": self.seed,
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
