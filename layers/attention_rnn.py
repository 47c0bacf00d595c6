"""A `keras.layers.RNN` over an `AttentionRNNCell` with its memory bound.

Teacher-forced decoding with attention (Bahdanau et al. 2014, Luong et al.
2015) in functional models: the decoder inputs and the memory (encoder
outputs) are two call arguments; the alignments can be returned.
"""

import keras
from keras import ops

from layers.attention_rnn_cell import AttentionRNNCell


@keras.saving.register_keras_serializable(package="attention_zoo")
class AttentionRNN(keras.layers.RNN):
    """Runs an `AttentionRNNCell` over a sequence, attending over a memory.

    Keras 3's `keras.layers.RNN` lost the `constants` argument of Keras 2,
    which attention decoders used to pass the encoder outputs to every
    step. This subclass takes the memory as a second call argument,
    computes its key projection once, binds it to the cell for the loop and
    runs the ordinary `keras.layers.RNN` loop (same masking, `go_backwards`,
    `unroll`, `zero_output_for_mask`, recurrent dropout). It can also return
    the alignment history (the attention weights of every step).

    References:
        Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly
        Learning to Align and Translate".
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".

    Args:
        cell: an `AttentionRNNCell`.
        return_sequences: return every step's output (default `True`, as a
            decoder needs) or only the last.
        return_state: also return the final states.
        return_alignments: also return the attention weights.
        go_backwards: process the sequence backwards.
        stateful: must be `False` (a memory belongs to one batch).
        unroll: unroll the loop (short, static-length sequences).
        zero_output_for_mask: zero outputs (and alignments) at masked
            steps (default); `False` repeats the previous step's output
            (TensorFlow backend only).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        sequences: `[B, T, Dx]` decoder inputs (e.g. embedded targets).
        memory: `[B, Tk, Dm]` memory (encoder outputs).
        initial_state: optional list of initial states: the full state list
            of the cell, or only the wrapped cell's states (the extra
            states then start at zero).
        sequences_mask: optional boolean `[B, T]` (filled from the
            sequences' Keras mask).
        memory_mask: optional boolean `[B, Tk]`, `True` = may attend
            (filled from the memory's Keras mask).
        training: whether dropout is active.

    Returns:
        The outputs `[B, T, output_size]` (`[B, output_size]` without
        `return_sequences`); then, with `return_alignments`, the float32
        alignments `[B, T, Tk]` (`[B, Tk]`); then, with `return_state`, the
        final states. Several results come as a tuple in that order.

    Example:
    ```python
    import keras
    import numpy as np
    from layers import AttentionRNN
    from layers import AttentionRNNCell
    from layers import LuongAttention

    source = keras.Input((None, 8))
    target = keras.Input((None, 5))
    cell = AttentionRNNCell(
        keras.layers.LSTMCell(8),
        LuongAttention(score="general"),
        attention_style="luong",
    )
    outputs, alignments = AttentionRNN(cell, return_alignments=True)(
        target, source
    )
    model = keras.Model([source, target], [outputs, alignments])
    out, weights = model([np.ones((2, 6, 8)), np.ones((2, 3, 5))])
    assert out.shape == (2, 3, 8) and weights.shape == (2, 3, 6)
    ```
    """

    def __init__(
        self,
        cell,
        return_sequences=True,
        return_state=False,
        return_alignments=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=True,
        **kwargs,
    ):
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if not isinstance(cell, AttentionRNNCell):
            raise ValueError(
                f"`cell` must be an AttentionRNNCell. Received: cell={cell!r}"
            )
        if stateful:
            raise ValueError(
                "AttentionRNN cannot be stateful: its memory belongs to one "
                f"batch. Received: stateful={stateful!r}"
            )
        if not zero_output_for_mask and keras.backend.backend() == "jax":
            # JAX's RNN loop repeats the first state at masked steps, which
            # is not this cell's output.
            raise ValueError(
                "AttentionRNN needs zero_output_for_mask=True on the JAX "
                "backend. Received: zero_output_for_mask=False"
            )
        if not isinstance(return_alignments, bool):
            raise ValueError(
                "`return_alignments` must be a bool. Received: "
                f"return_alignments={return_alignments!r}"
            )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=False,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )
        self.return_alignments = return_alignments

    def build(self, sequences_shape, memory_shape, initial_state_shape=None):
        sequences_shape = tuple(sequences_shape)
        memory_shape = tuple(memory_shape)
        if len(sequences_shape) != 3 or len(memory_shape) != 3:
            raise ValueError(
                "AttentionRNN expects sequences [batch, time, features] and a "
                "memory [batch, memory_length, memory_depth]. Received: "
                f"sequences.shape={sequences_shape}, "
                f"memory.shape={memory_shape}"
            )
        if not self.cell.built:
            step_shape = (sequences_shape[0], sequences_shape[2])
            self.cell.build(step_shape, memory_shape)
        super().build(sequences_shape)

    def _feed_size(self, memory):
        cell = self.cell
        if cell.attention_style == "bahdanau":
            return int(memory.shape[-1])
        return cell.attentional_size if cell.input_feeding else 0

    def call(
        self,
        sequences,
        memory,
        initial_state=None,
        sequences_mask=None,
        memory_mask=None,
        training=False,
    ):
        cell = self.cell
        batch_size = ops.shape(sequences)[0]
        if initial_state is None:
            initial_state = cell.get_initial_state(batch_size=batch_size)
        else:
            initial_state = cell.complete_state(initial_state, batch_size)
        initial_state = [ops.cast(s, cell.compute_dtype) for s in initial_state]
        inner = cell.cell
        uses_dropout = hasattr(inner, "get_dropout_mask")
        with cell.bind_memory(
            memory, memory_mask, return_alignments=self.return_alignments
        ):
            if uses_dropout:
                # Create the wrapped cell's dropout masks outside the loop
                # (as keras.layers.RNN does for its own cell).
                step_input = ops.concatenate(
                    [
                        sequences[:, 0],
                        ops.zeros(
                            (batch_size, self._feed_size(memory)),
                            sequences.dtype,
                        ),
                    ],
                    axis=-1,
                )
                inner.get_dropout_mask(step_input)
                inner.get_recurrent_dropout_mask(initial_state[0])
            try:
                last_output, outputs, states = self.inner_loop(
                    sequences=sequences,
                    initial_state=initial_state,
                    mask=sequences_mask,
                    training=training,
                )
            finally:
                if uses_dropout:
                    inner.reset_dropout_mask()
                    inner.reset_recurrent_dropout_mask()
        output = outputs if self.return_sequences else last_output
        if self.return_alignments:
            # The cell packs [output; alignments] into one float32 tensor.
            size = cell.compute_output_size(memory.shape[-1])
            alignments = output[..., size:]
            results = [ops.cast(output[..., :size], self.compute_dtype)]
            results.append(alignments)
        else:
            results = [ops.cast(output, self.compute_dtype)]
        if self.return_state:
            results.extend(ops.cast(s, self.compute_dtype) for s in states)
        return results[0] if len(results) == 1 else tuple(results)

    def compute_output_shape(
        self, sequences_shape, memory_shape, initial_state_shape=None
    ):
        batch, time = sequences_shape[0], sequences_shape[1]
        size = self.cell.compute_output_size(memory_shape[-1])
        lead = (batch, time) if self.return_sequences else (batch,)
        shapes = [(*lead, size)]
        if self.return_alignments:
            shapes.append((*lead, memory_shape[1]))
        if self.return_state:
            shapes.extend((batch, s) for s in self.cell.state_size)
        return shapes[0] if len(shapes) == 1 else tuple(shapes)

    def compute_output_spec(
        self,
        sequences,
        memory,
        initial_state=None,
        sequences_mask=None,
        memory_mask=None,
        training=False,
    ):
        shapes = self.compute_output_shape(sequences.shape, memory.shape)
        if not self.return_alignments and not self.return_state:
            return keras.KerasTensor(shapes, dtype=self.compute_dtype)
        specs = [keras.KerasTensor(s, dtype=self.compute_dtype) for s in shapes]
        if self.return_alignments:
            specs[1] = keras.KerasTensor(shapes[1], dtype="float32")
        return tuple(specs)

    def compute_mask(self, inputs, previous_mask):
        mask = (
            None
            if previous_mask is None
            else keras.tree.flatten(previous_mask)[0]
        )
        output_mask = mask if self.return_sequences else None
        masks = [output_mask]
        if self.return_alignments:
            masks.append(output_mask)
        if self.return_state:
            masks.extend(None for _ in self.cell.state_size)
        return masks[0] if len(masks) == 1 else masks

    def get_config(self):
        config = {"return_alignments": self.return_alignments}
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.RNN.from_config pops "cell" from the dict it is
        # given; work on a copy so the caller's config stays intact.
        config = dict(config)
        cell = keras.saving.deserialize_keras_object(
            config.pop("cell"), custom_objects=custom_objects
        )
        return cls(cell, **config)
