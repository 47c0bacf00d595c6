"""Recurrent encoder-decoder translators, with or without attention.

Cho et al. 2014 ("Learning Phrase Representations using RNN
Encoder-Decoder"; the no-attention baseline, whose decoder reads a fixed
summary of the source at every step), Bahdanau, Cho & Bengio 2014 (bi-GRU
encoder, GRU decoder with additive attention) and Luong, Pham & Manning
2015 (LSTM, dot/general/concat scores, input feeding).
"""

import keras
from keras import ops

from layers import AttentionRNN
from layers import AttentionRNNCell
from layers import BahdanauAttention
from layers import LuongAttention
from layers.validation import check_choice
from layers.validation import check_positive_int
from layers.validation import check_rate
from zoo.registry import register_model
from zoo.tokens import END_ID
from zoo.tokens import PAD_ID
from zoo.tokens import START_ID
from zoo.translation.translator import Translator

CELLS = ("gru", "lstm")
BRIDGES = ("tanh", "layer_norm")
READOUTS = ("state", "deep")
ATTENTIONS = (None, "bahdanau", "luong")
MERGE_MODES = ("concat", "sum")
INPUTS = (
    "dict of int32 token ids {'source': [B, S], 'target_in': [B, T]} "
    "(0 = padding) -> logits [B, T, target_vocab_size]"
)


@keras.saving.register_keras_serializable(package="attention_zoo")
class ConcatToSteps(keras.layers.Layer):
    """Concatenates a vector `[B, D]` to every step of `[B, T, F]`.

    The no-attention decoder of Cho et al. 2014 reads the source summary
    `c` at every step; this keeps the sequence's Keras mask.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, sequences, vector):
        steps = ops.shape(sequences)[1]
        tiled = ops.repeat(ops.expand_dims(vector, 1), steps, axis=1)
        return ops.concatenate(
            [sequences, ops.cast(tiled, sequences.dtype)], -1
        )

    def compute_output_shape(self, sequences_shape, vector_shape):
        return (*sequences_shape[:2], sequences_shape[2] + vector_shape[-1])

    def compute_mask(self, inputs, previous_mask):
        return previous_mask


@keras.saving.register_keras_serializable(package="attention_zoo")
class DeepOutput(keras.layers.Layer):
    """Bahdanau et al.'s deep output layer with maxout (their appendix A.2.2).

    `t_t = maxout_2(U s_{t-1} + V E y_{t-1} + C c_t)`: the next word `y_t`
    is read from the decoder state *before* its step, the embedding of the
    previous word and the context computed for `y_t` (a `[B, units]`
    readout, whose logits a `Dense` layer computes). Over whole sequences
    pass `initial_state`: the previous states are then the decoder's
    states `s_1..s_T` shifted one step right behind `s_0`. In a decoding
    step pass the state the step started from and no `initial_state`.

    Reference:
        Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly
        Learning to Align and Translate", appendix A.2.2; Goodfellow et
        al. 2013, "Maxout Networks".

    Args:
        units: readout size (the maxout takes the larger of each pair of
            `2 * units` linear units).
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    ```python
    import numpy as np
    from zoo.translation import DeepOutput

    readout = DeepOutput(4)
    states = np.ones((2, 3, 5), "float32")  # s_1..s_3
    words = np.ones((2, 3, 6), "float32")  # E y_0..E y_2
    contexts = np.ones((2, 3, 7), "float32")  # c_1..c_3
    out = readout(states, words, contexts,
                  initial_state=np.zeros((2, 5), "float32"))
    assert out.shape == (2, 3, 4)
    ```
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("units", units)
        self.units = units
        self.supports_masking = True
        self.dense = keras.layers.Dense(
            2 * units, dtype=self.dtype_policy, name="dense"
        )

    def build(self, states_shape, embedded_shape, context_shape, **kwargs):
        width = states_shape[-1] + embedded_shape[-1] + context_shape[-1]
        self.dense.build((*states_shape[:-1], width))

    def call(self, states, embedded, context, initial_state=None):
        if initial_state is not None:
            first = ops.expand_dims(ops.cast(initial_state, states.dtype), 1)
            states = ops.concatenate([first, states[:, :-1]], axis=1)
        hidden = self.dense(
            ops.concatenate(
                [
                    states,
                    ops.cast(embedded, states.dtype),
                    ops.cast(context, states.dtype),
                ],
                -1,
            )
        )
        # Maxout: the larger of each pair of adjacent units.
        pairs = ops.reshape(hidden, (*ops.shape(hidden)[:-1], self.units, 2))
        return ops.max(pairs, axis=-1)

    def compute_output_shape(self, states_shape, *args, **kwargs):
        return (*states_shape[:-1], self.units)

    def compute_mask(self, inputs, previous_mask=None):
        # The target sequence's mask, from whichever input carries it.
        if not isinstance(previous_mask, (list, tuple)):
            return previous_mask
        return next((m for m in previous_mask if m is not None), None)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="attention_zoo")
class RNNTranslator(Translator):
    """A recurrent encoder-decoder translator (functional, teacher-forced).

    Encoder: source embedding, a bidirectional GRU/LSTM whose two
    directions' outputs are concatenated or summed (`merge_mode`), and a
    bridge from its concatenated final states to the decoder's initial
    state: `tanh(W [h_fwd; h_bwd])` as in Bahdanau et al. 2014 (`"tanh"`),
    or a linear map followed by layer normalisation (`"layer_norm"`).
    Decoder, by `attention`:

    - `None`: Cho et al. 2014's encoder-decoder, the baseline: the bridged
      summary initialises the decoder and is concatenated to its input at
      every step; nothing else of the source is seen. Its bridge is
      `"layer_norm"`: the tanh summary saturates early in training (every
      unit at +-1 whatever the source), and the decoder then produces one
      translation for every sentence.
    - `"bahdanau"`: an `AttentionRNNCell` with `BahdanauAttention`
      (Bahdanau et al. 2014): the previous state attends over the encoder
      outputs and the context is fed into the cell. With `readout="deep"`
      (the paper's, and the registered `seq2seq_bahdanau`'s) the word is
      read by `DeepOutput` from `s_{t-1}`, the previous word and `c_t`;
      with `readout="state"` the output layer reads `[s_t; c_t]`.
    - `"luong"`: an `AttentionRNNCell` with `LuongAttention(score)`
      (Luong et al. 2015): the attentional state `W_c [c_t; h_t]` (linear)
      feeds the output layer and, with `input_feeding`, the next step.

    References:
        Cho et al. 2014, "Learning Phrase Representations using RNN
        Encoder-Decoder for Statistical Machine Translation".
        Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly
        Learning to Align and Translate".
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".

    Args:
        source_vocab_size: source vocabulary size (id 0 = padding).
        target_vocab_size: target vocabulary size (ids 0 pad, 2 start,
            3 end by default).
        embedding_dim: token embedding size.
        units: recurrent units of each encoder direction and the decoder.
        cell: `"gru"` or `"lstm"`.
        attention: `None`, `"bahdanau"` or `"luong"`.
        score: Luong score, `"dot"`, `"general"` or `"concat"`.
        attention_units: hidden size of the additive/concat scores
            (default `units`).
        input_feeding: Luong input feeding.
        attention_activation: activation of Luong's attention layer:
            `None` (linear, default) or `"tanh"` (the paper's exact form,
            which saturates early in training; see `AttentionRNNCell`).
        merge_mode: how the encoder directions combine, `"concat"` or
            `"sum"` (`"dot"` needs `"sum"`: memory depth = `units`).
        bridge: `"tanh"` or `"layer_norm"`, the map from the encoder's
            final states to the decoder's first state (default: `"tanh"`
            with attention, `"layer_norm"` without).
        readout: what the logits are computed from, with Bahdanau
            attention: `"state"` (the cell's output `[s_t; c_t]`) or
            `"deep"` (Bahdanau et al.'s maxout deep output, `DeepOutput`;
            on gettext_de_en 2.5 BLEU better over 3 seeds,
            docs/translation.md).
            Other decoders read their cell's output.
        dropout: dropout on embeddings and decoder outputs.
        start_id, end_id, max_target_length: see `Translator`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:
    ```python
    import numpy as np
    import zoo

    model = zoo.build("seq2seq_bahdanau", source_vocab_size=50,
                      target_vocab_size=40, embedding_dim=8, units=8)
    source = np.array([[5, 6, 7, 0]], "int32")
    logits = model({"source": source,
                    "target_in": np.array([[2, 9, 10]], "int32")})
    assert logits.shape == (1, 3, 40)
    result = model.generate(source, method="beam", max_length=5)
    assert result.tokens.shape == (1, 4, 5)
    ```
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        embedding_dim=128,
        units=256,
        cell="gru",
        attention=None,
        score="general",
        attention_units=None,
        input_feeding=True,
        attention_activation=None,
        merge_mode="concat",
        bridge=None,
        readout="state",
        dropout=0.1,
        start_id=START_ID,
        end_id=END_ID,
        max_target_length=64,
        **kwargs,
    ):
        for name, value in (
            ("source_vocab_size", source_vocab_size),
            ("target_vocab_size", target_vocab_size),
            ("embedding_dim", embedding_dim),
            ("units", units),
        ):
            check_positive_int(name, value)
        if attention_units is not None:
            check_positive_int("attention_units", attention_units)
        check_choice("cell", cell, CELLS)
        check_choice("attention", attention, ATTENTIONS)
        check_choice("merge_mode", merge_mode, MERGE_MODES)
        if bridge is None:
            bridge = "layer_norm" if attention is None else "tanh"
        check_choice("bridge", bridge, BRIDGES)
        check_choice("readout", readout, READOUTS)
        if readout == "deep" and attention != "bahdanau":
            raise ValueError(
                "readout='deep' is Bahdanau et al.'s output layer: it needs "
                f"attention='bahdanau'. Received: attention={attention!r}"
            )
        if attention == "luong":
            check_choice("score", score, ("dot", "general", "concat"))
            if score == "dot" and merge_mode != "sum":
                raise ValueError(
                    "The Luong 'dot' score needs memory and decoder states "
                    "of equal size: use merge_mode='sum'. Received: "
                    f"score={score!r}, merge_mode={merge_mode!r}"
                )
        check_rate("dropout", dropout)
        recurrent = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
        cell_class = {
            "gru": keras.layers.GRUCell,
            "lstm": keras.layers.LSTMCell,
        }[cell]
        num_states = 2 if cell == "lstm" else 1

        # === Layers ===
        self.source_embedding = keras.layers.Embedding(
            source_vocab_size,
            embedding_dim,
            mask_zero=True,
            name="source_embedding",
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocab_size,
            embedding_dim,
            mask_zero=True,
            name="target_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout, name="embedding_dropout"
        )
        self.encoder = keras.layers.Bidirectional(
            recurrent(units, return_sequences=True, return_state=True),
            merge_mode=merge_mode,
            name="encoder",
        )
        self.state_concat = keras.layers.Concatenate(name="state_concat")
        # One bridge per decoder state: h (tanh, or linear + layer norm);
        # an LSTM's c is linear.
        self.bridges = [
            keras.layers.Dense(
                units,
                activation="tanh" if i == 0 and bridge == "tanh" else None,
                name=f"bridge_{i}",
            )
            for i in range(num_states)
        ]
        self.bridge_norm = None
        if bridge == "layer_norm":
            self.bridge_norm = keras.layers.LayerNormalization(
                name="bridge_norm"
            )
        if attention is None:
            self.summary_concat = ConcatToSteps(name="summary_concat")
            self.decoder_cell = cell_class(units, name="decoder_cell")
            self.decoder = keras.layers.RNN(
                self.decoder_cell, return_sequences=True, name="decoder"
            )
        else:
            if attention == "bahdanau":
                mechanism = BahdanauAttention(
                    attention_units or units, name="attention"
                )
            else:
                mechanism = LuongAttention(
                    score=score,
                    units=(attention_units or units)
                    if score == "concat"
                    else None,
                    name="attention",
                )
            self.decoder_cell = AttentionRNNCell(
                cell_class(units, name="cell"),
                mechanism,
                attention_style=attention,
                input_feeding=input_feeding,
                attention_activation=attention_activation
                if attention == "luong"
                else None,
                name="decoder_cell",
            )
            self.decoder = AttentionRNN(self.decoder_cell, name="decoder")
        self.readout_layer = None
        if readout == "deep":
            self.readout_layer = DeepOutput(units, name="readout")
        self.output_dropout = keras.layers.Dropout(
            dropout, name="output_dropout"
        )
        self.output_dense = keras.layers.Dense(target_vocab_size, name="logits")

        # === Functional Model ===
        source = keras.Input((None,), dtype="int32", name="source")
        target_in = keras.Input((None,), dtype="int32", name="target_in")
        memory, initial_state = self._encode(source, training=None)
        embedded = self.embedding_dropout(self.target_embedding(target_in))
        if attention is None:
            decoded = self.decoder(
                self.summary_concat(embedded, initial_state[0]),
                initial_state=initial_state,
            )
        else:
            decoded = self.decoder(
                embedded, memory, initial_state=initial_state
            )
            if self.readout_layer is not None:
                # The cell's output is [s_t; c_t].
                decoded = self.readout_layer(
                    decoded[..., :units],
                    embedded,
                    decoded[..., units:],
                    initial_state=initial_state[0],
                )
        logits = self.output_dense(self.output_dropout(decoded))
        super().__init__(
            inputs={"source": source, "target_in": target_in},
            outputs=logits,
            start_id=start_id,
            end_id=end_id,
            max_target_length=max_target_length,
            **kwargs,
        )

        # === Config ===
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.attention = attention
        self.score = score
        self.attention_units = attention_units
        self.input_feeding = input_feeding
        self.attention_activation = attention_activation
        self.merge_mode = merge_mode
        self.bridge = bridge
        self.readout = readout
        self.dropout = dropout

    def _encode(self, source, training=None, mask=None):
        """`(memory [B, S, D], initial decoder states)` of source ids."""
        embedded = self.embedding_dropout(
            self.source_embedding(source), training=training
        )
        if mask is None:
            outputs = self.encoder(embedded, training=training)
        else:
            outputs = self.encoder(embedded, mask=mask, training=training)
        memory, finals = outputs[0], list(outputs[1:])
        half = len(finals) // 2
        forward, backward = finals[:half], finals[half:]
        states = [
            bridge(self.state_concat([f, b]))
            for bridge, f, b in zip(self.bridges, forward, backward)
        ]
        if self.bridge_norm is not None:
            states[0] = self.bridge_norm(states[0])
        return memory, states

    # === Decoding (zoo.decoding step function) ===

    @property
    def has_attention(self):
        return self.attention is not None

    def encode(self, source_ids, max_length=None):
        mask = ops.not_equal(source_ids, PAD_ID)
        memory, states = self._encode(source_ids, training=False, mask=mask)
        if self.attention is None:
            return states, {"summary": states[0]}
        cell = self.decoder_cell
        context = {
            "memory": memory,
            "memory_mask": mask,
            "projected_memory": cell.project_memory(memory),
        }
        return cell.complete_state(states), context

    def decode_step(self, tokens, state, context, step):
        embedded = self.target_embedding(tokens)  # [N, E]
        if self.attention is None:
            inputs = ops.concatenate(
                [embedded, ops.cast(context["summary"], embedded.dtype)], -1
            )
            output, state = self.decoder_cell(inputs, state, training=False)
            alignments = None
        else:
            if self.readout_layer is not None:
                previous_state = list(keras.tree.flatten(state))[0]  # s_{t-1}
            (output, alignments), state = self.decoder_cell(
                embedded,
                state,
                memory=context["memory"],
                memory_mask=context["memory_mask"],
                projected_memory=context["projected_memory"],
                return_alignments=True,
                training=False,
            )
            if self.readout_layer is not None:
                output = self.readout_layer(
                    previous_state, embedded, output[..., self.units :]
                )
        state = list(keras.tree.flatten(state))
        return self.output_dense(output), state, alignments

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "attention": self.attention,
            "score": self.score,
            "attention_units": self.attention_units,
            "input_feeding": self.input_feeding,
            "attention_activation": self.attention_activation,
            "merge_mode": self.merge_mode,
            "bridge": self.bridge,
            "readout": self.readout,
            "dropout": self.dropout,
        }


_PAPERS = {
    "seq2seq_gru": "Cho et al. 2014, Learning Phrase Representations using "
    "RNN Encoder-Decoder for Statistical Machine Translation",
    "seq2seq_bahdanau": "Bahdanau, Cho & Bengio 2014, Neural Machine "
    "Translation by Jointly Learning to Align and Translate",
    "seq2seq_luong": "Luong, Pham & Manning 2015, Effective Approaches to "
    "Attention-based Neural Machine Translation",
}


def rnn_translator(
    source_vocab_size=8000,
    target_vocab_size=8000,
    embedding_dim=128,
    units=256,
    dropout=0.1,
    **kwargs,
):
    """Builds an `RNNTranslator`; the registered variants set its kind.

    `seq2seq_gru`: Bi-GRU encoder, GRU decoder without attention (the
    baseline); `seq2seq_bahdanau`: the same with Bahdanau (additive)
    attention and the paper's maxout deep output; `seq2seq_luong`: Bi-LSTM
    encoder (directions summed), LSTM decoder with Luong attention
    (general score, input feeding). The model is named after its
    attention (`seq2seq_<attention or cell>`) unless `name` is given.
    """
    kind = kwargs.get("attention") or kwargs.get("cell", "gru")
    kwargs.setdefault("name", f"seq2seq_{kind}")
    return RNNTranslator(
        source_vocab_size,
        target_vocab_size,
        embedding_dim=embedding_dim,
        units=units,
        dropout=dropout,
        **kwargs,
    )


def _register(model_name, **defaults):
    register_model(
        model_name,
        task="translation",
        inputs=INPUTS,
        paper=_PAPERS[model_name],
        **defaults,
    )(rnn_translator)


_register("seq2seq_gru", cell="gru", attention=None)
_register("seq2seq_bahdanau", cell="gru", attention="bahdanau", readout="deep")
_register(
    "seq2seq_luong",
    cell="lstm",
    attention="luong",
    score="general",
    input_feeding=True,
    merge_mode="sum",
)
