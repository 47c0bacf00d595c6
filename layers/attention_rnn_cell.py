"""An RNN cell with Bahdanau- or Luong-style attention over a memory.

The Keras 3 successor of tensorflow-addons' `AttentionWrapper`: any Keras
RNN cell (`GRUCell`, `LSTMCell`, ...) plus one of this project's attention
layers (`BahdanauAttention`, `LuongAttention`, `Attention`). Bahdanau, Cho &
Bengio 2014 (attention from the previous state, context fed into the cell)
and Luong, Pham & Manning 2015 (attention after the step, attentional state
`W_c [c; h]`, input feeding).
"""

import contextlib

import keras
from keras import ops

from layers.validation import check_activation
from layers.validation import check_bool
from layers.validation import check_choice
from layers.validation import check_positive_int

ATTENTION_STYLES = ("bahdanau", "luong")


def _flat(structure):
    return keras.tree.flatten(structure)


def _sizes(state_size):
    if isinstance(state_size, int):
        return [state_size]
    return [int(s) for s in _flat(state_size)]


class _MemoryBinding:
    """Holds the memory bound for one `keras.layers.RNN` call (untracked)."""

    def __init__(self):
        self.memory = None
        self.memory_mask = None
        self.projected = None
        self.return_alignments = False


@keras.saving.register_keras_serializable(package="attention_zoo")
class AttentionRNNCell(keras.layers.Layer):
    """Wraps an RNN cell with attention over a memory (the encoder outputs).

    Two classic ways of adding attention to a recurrent decoder:

    - `attention_style="bahdanau"` (Bahdanau, Cho & Bengio 2014): the
      previous state `s_{t-1}` (the first state of the cell, `h` for an
      LSTM) queries the memory; the context `c_t` is concatenated to the
      input `x_t` of the cell; the cell's output is `[s_t; c_t]` (for a
      deep output layer on top).
    - `attention_style="luong"` (Luong, Pham & Manning 2015): the cell steps
      first, `h_t = cell(x_t, ...)`, then `h_t` queries the memory and the
      attentional state `h~_t = W_c [c_t; h_t]` is the output. With
      `input_feeding=True` (§3.3) `h~_{t-1}` is concatenated to `x_t` and
      carried as an extra state.

    The attention layer `W_c` is linear by default, as in tensorflow-addons'
    `AttentionWrapper` and tensorflow/nmt. The paper's `tanh(W_c [c_t; h_t])`
    is `attention_activation="tanh"`; with a freshly initialised decoder
    that tanh saturates within a few optimiser steps on real data (most
    units at |h~| > 0.99), after which attention collapses onto one source
    position and the decoder stops learning from the source. The linear
    layer trains.

    tensorflow-addons' `AttentionWrapper(cell, mechanism, ...)` is the
    Luong style with input feeding, whatever the mechanism: the new cell
    output queries the memory (a `BahdanauAttention` mechanism included)
    and the attention vector starts at zero. Its options map as follows:
    `attention_layer_size=N` is `attention_units=N`;
    `attention_layer_size=None` is `use_attention_layer=False` (the
    attention vector is the context itself); `output_attention=False` is
    `output_attention=False` (the cell emits `h_t`, the attention vector
    still feeds the next step); `alignment_history=True` is
    `AttentionRNN(..., return_alignments=True)`. Its attention layer reads
    `[h_t; c_t]` where this one reads `[c_t; h_t]`: swap the two row
    blocks of the kernel when moving weights.

    Keras 3's `keras.layers.RNN` has no `constants` argument (Keras 2 had),
    so the memory reaches the cell in one of three ways:

    1. `layers.AttentionRNN(cell)(sequences, memory, memory_mask=...)`, a
       `keras.layers.RNN` that binds the memory for its loop (functional
       models, training with teacher forcing; can return the alignments);
    2. one step at a time: `cell(x_t, states, memory=..., memory_mask=...,
       projected_memory=...)` (decoding loops: greedy and beam search);
    3. `with cell.bind_memory(memory, mask): keras.layers.RNN(cell)(x)`
       inside a layer's `call` or eagerly.

    The memory's key projection is computed once per sequence
    (`attention.project_key`) and reused at every step.

    States: the wrapped cell's states, then `h~_{t-1}` (Luong with input
    feeding), then a step counter (only for Luong local-m attention, whose
    window is centred on the step: `query_position`).

    References:
        Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly
        Learning to Align and Translate".
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".

    Args:
        cell: a Keras RNN cell (has `state_size`; e.g.
            `keras.layers.GRUCell(64)`, `keras.layers.LSTMCell(64)`). Its
            first state is the attention query of the Bahdanau style.
        attention: an attention layer of this project taking a 2-D query
            and `projected_key=` (`BahdanauAttention`, `LuongAttention`,
            `Attention`).
        attention_style: `"bahdanau"` (default) or `"luong"`.
        attention_units: size of Luong's attentional state `h~` (the
            bias-free `W_c` projection); defaults to the cell's units.
            Luong style only.
        attention_activation: activation of the attention layer `W_c`:
            `None` (default, linear, as tensorflow-addons) or e.g. `"tanh"`
            (the paper's exact form, which saturates early in training).
            Luong style only.
        use_attention_layer: Luong style only: `False` drops `W_c`, and the
            attentional state is the context `c_t` itself (of the memory's
            depth; tensorflow-addons' `attention_layer_size=None`).
        input_feeding: Luong style only: feed `h~_{t-1}` into the cell input.
        output_attention: whether the cell's output is the attention
            result (default: `h~_t` for Luong, `[s_t; c_t]` for Bahdanau)
            or, with `False`, the wrapped cell's own output (`h_t`, `s_t`).
            The states are the same either way.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[B, Dx]` input of one step.
        states: list of state tensors (see `state_size`).
        memory: `[B, Tk, Dm]` memory (encoder outputs). Optional inside
            `AttentionRNN` / `bind_memory`, which bind it.
        memory_mask: optional boolean `[B, Tk]`, `True` = may attend.
        projected_memory: optional `attention.project_key(memory)`, to skip
            recomputing it at every step.
        return_alignments: also return the attention weights.
        training: whether dropout is active.

    Returns:
        `(output, new_states)`, or `((output, alignments), new_states)` with
        `return_alignments=True`; `output` is `[B, output_size]`,
        `alignments` float32 `[B, Tk]`. (With a bound memory the two are
        packed into one float32 tensor, see `bind_memory`.)

    Example:
    ```python
    import keras
    import numpy as np
    from layers import AttentionRNN
    from layers import AttentionRNNCell
    from layers import BahdanauAttention

    cell = AttentionRNNCell(
        keras.layers.GRUCell(16), BahdanauAttention(units=8)
    )
    memory = np.random.rand(2, 7, 12).astype("float32")
    memory_mask = np.arange(7)[None, :] < np.array([[7], [4]])
    targets = np.random.rand(2, 5, 6).astype("float32")
    outputs, alignments = AttentionRNN(cell, return_alignments=True)(
        targets, memory, memory_mask=memory_mask
    )
    assert outputs.shape == (2, 5, 16 + 12) and alignments.shape == (2, 5, 7)
    # One decoding step with the same cell:
    states = cell.get_initial_state(batch_size=2)
    output, states = cell(targets[:, 0], states, memory=memory)
    ```
    """

    def __init__(
        self,
        cell,
        attention,
        attention_style="bahdanau",
        attention_units=None,
        input_feeding=True,
        attention_activation=None,
        use_attention_layer=True,
        output_attention=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if isinstance(attention, dict):
            attention = keras.saving.deserialize_keras_object(attention)
        if not isinstance(cell, keras.layers.Layer) or not hasattr(
            cell, "state_size"
        ):
            raise ValueError(
                "`cell` must be a Keras RNN cell (a layer with `state_size`, "
                f"e.g. keras.layers.GRUCell). Received: cell={cell!r}"
            )
        if not isinstance(attention, keras.layers.Layer) or not hasattr(
            attention, "project_key"
        ):
            raise ValueError(
                "`attention` must be an attention layer of this project with "
                "`project_key` (BahdanauAttention, LuongAttention, "
                f"Attention). Received: attention={attention!r}"
            )
        check_choice("attention_style", attention_style, ATTENTION_STYLES)
        check_positive_int("attention_units", attention_units, allow_none=True)
        check_bool("input_feeding", input_feeding)
        check_bool("use_attention_layer", use_attention_layer)
        check_bool("output_attention", output_attention)
        if attention_style != "luong" and (
            attention_activation is not None or not use_attention_layer
        ):
            raise ValueError(
                "`attention_activation` and `use_attention_layer` configure "
                "the Luong style's attention layer; the Bahdanau style has "
                f"none. Received: attention_style={attention_style!r}, "
                f"attention_activation={attention_activation!r}, "
                f"use_attention_layer={use_attention_layer!r}"
            )
        if not use_attention_layer and (
            attention_units is not None or attention_activation is not None
        ):
            raise ValueError(
                "Without an attention layer the attentional state is the "
                "context: `attention_units` and `attention_activation` must "
                f"be None. Received: attention_units={attention_units!r}, "
                f"attention_activation={attention_activation!r}"
            )
        activation = check_activation(
            "attention_activation", attention_activation
        )
        self.cell = cell
        self.attention = attention
        self.attention_style = attention_style
        self.attention_units = attention_units
        self.input_feeding = input_feeding
        self.attention_activation = attention_activation
        self.use_attention_layer = use_attention_layer
        self.output_attention = output_attention
        self._cell_state_sizes = _sizes(cell.state_size)
        self.units = int(getattr(cell, "units", self._cell_state_sizes[0]))
        self._luong = attention_style == "luong"
        self._feeds = self._luong and input_feeding
        self._counts_steps = (
            getattr(attention, "window", None) is not None
            and getattr(attention, "local_mode", None) == "monotonic"
        )
        self._binding = _MemoryBinding()
        self._memory_depth = None
        self.supports_masking = True
        self.attention_dense = None
        if self._luong and use_attention_layer:
            self.attention_dense = keras.layers.Dense(
                self.attention_units or self.units,
                use_bias=False,
                activation=activation,
                dtype=self.dtype_policy,
                name="attention_dense",
            )

    # === Sizes ===

    @property
    def attentional_size(self):
        """Size of Luong's attentional state `h~`.

        `attention_units` (default: the cell's units), or the memory's
        depth without an attention layer (`None` until built then).
        """
        if self.use_attention_layer:
            return self.attention_units or self.units
        return self._memory_depth

    def _attentional_size_for(self, memory_depth):
        if self.use_attention_layer:
            return self.attentional_size
        return int(memory_depth)

    @property
    def state_size(self):
        sizes = list(self._cell_state_sizes)
        if self._feeds:
            if self.attentional_size is None:
                raise ValueError(
                    "The state size of an AttentionRNNCell without an "
                    "attention layer is the memory's depth: build the cell "
                    "with the memory's shape first."
                )
            sizes.append(self.attentional_size)
        if self._counts_steps:
            sizes.append(1)
        return sizes

    def compute_output_size(self, memory_depth):
        """The output size for a memory of depth `memory_depth`."""
        if not self.output_attention:
            return self.units
        if self._luong:
            return self._attentional_size_for(memory_depth)
        return self.units + int(memory_depth)

    @property
    def output_size(self):
        if self._memory_depth is None:
            if not self.output_attention:
                return self.units
            if self._luong and self.use_attention_layer:
                return self.attentional_size
            return None  # Depends on the memory: known once built.
        return self.compute_output_size(self._memory_depth)

    # === Build ===

    def build(self, inputs_shape, memory_shape=None):
        if memory_shape is None and self._binding.memory is not None:
            memory_shape = tuple(self._binding.memory.shape)
        if memory_shape is None:
            raise ValueError(
                "AttentionRNNCell needs the memory's shape to build: use it "
                "through `layers.AttentionRNN`, call it with `memory=`, "
                "wrap the RNN call in `cell.bind_memory(memory)`, or call "
                "`cell.build(inputs_shape, memory_shape)`."
            )
        inputs_shape = tuple(inputs_shape)
        memory_shape = tuple(memory_shape)
        if len(inputs_shape) != 2 or len(memory_shape) != 3:
            raise ValueError(
                "AttentionRNNCell expects step inputs [batch, features] and "
                "a memory [batch, memory_length, memory_depth]. Received: "
                f"inputs.shape={inputs_shape}, memory.shape={memory_shape}"
            )
        if memory_shape[-1] is None:
            raise ValueError(
                "The memory's depth (last axis) must be known. Received: "
                f"memory.shape={memory_shape}"
            )
        self._memory_depth = int(memory_shape[-1])
        batch = inputs_shape[0]
        feed = self._memory_depth if not self._luong else 0
        if self._feeds:
            feed = self.attentional_size
        if not self.cell.built:
            self.cell.build((batch, inputs_shape[-1] + feed))
        if not self.attention.built:
            self.attention.build((batch, self.units), memory_shape)
        dense = self.attention_dense
        if dense is not None and not dense.built:
            dense.build((batch, self.units + self._memory_depth))
        self.built = True

    # === Memory ===

    def project_memory(self, memory):
        """`attention.project_key(memory)`: compute once per sequence."""
        return self.attention.project_key(memory)

    @contextlib.contextmanager
    def bind_memory(
        self,
        memory,
        memory_mask=None,
        projected_memory=None,
        return_alignments=False,
    ):
        """Binds a memory for the steps run inside this context.

        For a `keras.layers.RNN(cell)` called inside a layer's `call` (or
        eagerly): the steps see `memory` without it being an argument.

        Args:
            memory: `[B, Tk, Dm]` memory.
            memory_mask: optional boolean `[B, Tk]`.
            projected_memory: optional precomputed `project_memory(memory)`.
            return_alignments: every step returns the float32
                concatenation `[output; alignments]` (split it at
                `output_size`), so that the RNN loop handles one tensor.
        """
        binding = self._binding
        if binding.memory is not None:
            raise ValueError(
                "A memory is already bound to this AttentionRNNCell (nested "
                "`bind_memory`/`AttentionRNN` calls on one cell)."
            )
        if not self.attention.built:
            self.attention.build(
                (memory.shape[0], self.units), tuple(memory.shape)
            )
        if projected_memory is None:
            projected_memory = self.project_memory(memory)
        binding.memory = memory
        binding.memory_mask = memory_mask
        binding.projected = projected_memory
        binding.return_alignments = return_alignments
        try:
            yield self
        finally:
            binding.memory = None
            binding.memory_mask = None
            binding.projected = None
            binding.return_alignments = False

    # === States ===

    def get_initial_state(self, batch_size=None):
        get_cell_state = getattr(self.cell, "get_initial_state", None)
        if get_cell_state is not None:
            cell_states = _flat(get_cell_state(batch_size=batch_size))
        else:
            cell_states = [
                ops.zeros((batch_size, size), dtype=self.compute_dtype)
                for size in self._cell_state_sizes
            ]
        return self.complete_state(cell_states, batch_size)

    def complete_state(self, cell_states, batch_size=None):
        """Full initial states from the wrapped cell's states.

        `cell_states` is the wrapped cell's state list (e.g. the encoder's
        final state as the decoder's initial state); the extra states
        (input feeding, step counter) start at zero. A full state list is
        returned unchanged.
        """
        cell_states = list(_flat(cell_states))
        if len(cell_states) == len(self.state_size):
            return cell_states
        if len(cell_states) != len(self._cell_state_sizes):
            raise ValueError(
                f"Expected {len(self._cell_state_sizes)} state tensors of the "
                f"wrapped cell (or {len(self.state_size)} of this cell). "
                f"Received: {len(cell_states)} tensors"
            )
        if batch_size is None:
            batch_size = ops.shape(cell_states[0])[0]
        dtype = cell_states[0].dtype
        extra = self.state_size[len(cell_states) :]
        return cell_states + [
            ops.zeros((batch_size, size), dtype=dtype) for size in extra
        ]

    # === Step ===

    def _attend(self, query, memory, memory_mask, projected, step, training):
        kwargs = {}
        if self._counts_steps:
            kwargs["query_position"] = ops.squeeze(step, -1)
        # query: [B, Dq]; memory: [B, Tk, Dm] -> context [B, Dm], [B, Tk]
        return self.attention(
            query,
            memory,
            value_mask=memory_mask,
            projected_key=projected,
            return_attention_scores=True,
            training=training,
            **kwargs,
        )

    def _cell_step(self, inputs, cell_states, training):
        output, new = self.cell(inputs, cell_states, training=training)
        return output, list(_flat(new))

    def call(
        self,
        inputs,
        states,
        training=None,
        memory=None,
        memory_mask=None,
        projected_memory=None,
        return_alignments=None,
    ):
        binding = self._binding
        if memory is None:
            if binding.memory is None:
                raise ValueError(
                    "AttentionRNNCell has no memory: pass `memory=` or run "
                    "it inside `layers.AttentionRNN` / `cell.bind_memory`."
                )
            memory = binding.memory
            memory_mask = binding.memory_mask
            projected_memory = binding.projected
        if return_alignments is None:
            return_alignments = binding.return_alignments
        if projected_memory is None:
            projected_memory = self.project_memory(memory)
        states = list(_flat(states))
        n = len(self._cell_state_sizes)
        cell_states = states[:n]
        step = states[-1] if self._counts_steps else None
        if self._luong:
            # Luong: step, then attend with h_t, attentional state h~_t.
            cell_input = inputs
            if self._feeds:
                cell_input = ops.concatenate(
                    [inputs, ops.cast(states[n], inputs.dtype)], axis=-1
                )
            cell_output, new_cell = self._cell_step(
                cell_input, cell_states, training
            )
            context, alignments = self._attend(
                cell_output,
                memory,
                memory_mask,
                projected_memory,
                step,
                training,
            )
            context = ops.cast(context, cell_output.dtype)
            attentional = context
            if self.attention_dense is not None:
                attentional = self.attention_dense(
                    ops.concatenate([context, cell_output], -1)
                )
            new_states = new_cell + ([attentional] if self._feeds else [])
            output = attentional if self.output_attention else cell_output
        else:
            # Bahdanau: attend with s_{t-1}, feed c_t into the cell.
            context, alignments = self._attend(
                cell_states[0],
                memory,
                memory_mask,
                projected_memory,
                step,
                training,
            )
            context = ops.cast(context, inputs.dtype)
            cell_output, new_cell = self._cell_step(
                ops.concatenate([inputs, context], axis=-1),
                cell_states,
                training,
            )
            output = cell_output
            if self.output_attention:
                output = ops.concatenate(
                    [cell_output, ops.cast(context, cell_output.dtype)], -1
                )
            new_states = new_cell
        if self._counts_steps:
            new_states = new_states + [step + 1]
        if return_alignments and memory is binding.memory:
            # Inside a keras.layers.RNN loop: one packed float32 tensor
            # (backends mask and stack one tensor per step, not a tuple).
            packed = ops.concatenate(
                [ops.cast(output, "float32"), alignments], axis=-1
            )
            return packed, new_states
        if return_alignments:
            return (output, alignments), new_states
        return output, new_states

    # === Config ===

    def get_config(self):
        config = {
            "cell": keras.saving.serialize_keras_object(self.cell),
            "attention": keras.saving.serialize_keras_object(self.attention),
            "attention_style": self.attention_style,
            "attention_units": self.attention_units,
            "input_feeding": self.input_feeding,
            "attention_activation": (
                None
                if self.attention_activation is None
                else keras.activations.serialize(
                    keras.activations.get(self.attention_activation)
                )
            ),
            "use_attention_layer": self.use_attention_layer,
            "output_attention": self.output_attention,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        config["attention"] = keras.saving.deserialize_keras_object(
            config["attention"]
        )
        return cls(**config)
