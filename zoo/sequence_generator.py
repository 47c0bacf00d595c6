"""Base class of the models that generate token sequences: a functional
model trained with teacher forcing that also decodes (greedy or beam
search, `zoo.decoding`).

Sutskever, Vinyals & Le 2014, "Sequence to Sequence Learning with Neural
Networks"; beam search with the length penalty of Wu et al. 2016.
"""

import keras
import tensorflow as tf

from zoo import decoding
from zoo.tokens import END_ID
from zoo.tokens import PAD_ID
from zoo.tokens import START_ID


class SequenceGenerator(keras.Model):
    """A teacher-forced model that generates token sequences.

    Subclasses build a functional model (keras-hub style: layers as
    attributes, then `super().__init__(inputs, outputs)`) whose inputs hold
    what is conditioned on and `"target_in"`, int32 `[B, T]` (0 = padding;
    it starts with `start_id`), and whose output logits `[B, T, V]` predict
    the targets shifted by one (ending in `end_id`). They implement the two
    pieces decoding needs, in the `zoo.decoding` contract:

    - `encode(inputs, max_length)` -> `(state, context)`: the initial
      decoder state and the step-invariant context;
    - `decode_step(tokens, state, context, step)` -> `(logits, state,
      attention)`: one decoder step (the `zoo.decoding` step function).

    `generate` runs greedy or beam search with them; all of it traces into
    a `tf.function` (an exported SavedModel decodes in one graph).

    Subclasses name the default maximum length after what they generate
    (`max_length_key`, its constructor argument and config key) and set
    the default GNMT length penalty of `generate`.

    Args:
        start_id: id of the start token fed at the first step.
        end_id: id of the end token that finishes a sequence.
        max_length: default maximum number of produced tokens.
        **kwargs: `keras.Model` arguments (`inputs`, `outputs`, `name`).
    """

    # Config key (and constructor argument) of `max_length`.
    max_length_key = "max_length"
    # `generate`'s GNMT alpha when none is given.
    default_length_penalty = 0.0

    def __init__(
        self,
        *args,
        start_id=START_ID,
        end_id=END_ID,
        max_length=64,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.start_id = start_id
        self.end_id = end_id
        self.max_length = max_length

    @property
    def has_attention(self):
        """Whether `decode_step` returns attention weights."""
        return True

    def encode(self, inputs, max_length):
        raise NotImplementedError

    def decode_step(self, tokens, state, context, step):
        raise NotImplementedError

    def prepare_inputs(self, inputs):
        """The model's conditioning input as a tensor (before `encode`)."""
        return tf.convert_to_tensor(inputs)

    def generate(
        self,
        inputs,
        method="greedy",
        max_length=None,
        beam_width=4,
        length_penalty=None,
    ):
        """Generates a sequence for each example of a batch.

        Args:
            inputs: the batch conditioned on (source ids, images).
            method: `"greedy"` or `"beam"`.
            max_length: maximum produced tokens (default `max_length`).
            beam_width: beams per example (beam search).
            length_penalty: GNMT alpha (beam search; default
                `default_length_penalty`).

        Returns:
            A `zoo.decoding.DecodeResult` (`[B, ...]` for greedy,
            `[B, K, ...]` for beam search, best beam first; `.best()`
            gives the best of each example).
        """
        decoding.check_search_method(method)
        if length_penalty is None:
            length_penalty = self.default_length_penalty
        inputs = self.prepare_inputs(inputs)
        max_length = max_length or self.max_length
        state, context = self.encode(inputs, max_length)
        start = tf.fill([tf.shape(inputs)[0]], self.start_id)
        return decoding.search(
            method,
            self.decode_step,
            state,
            start,
            self.end_id,
            max_length,
            beam_width=beam_width,
            length_penalty=length_penalty,
            context=context,
            pad_token=PAD_ID,
        )

    def get_config(self):
        return {
            "name": self.name,
            "start_id": self.start_id,
            "end_id": self.end_id,
            self.max_length_key: self.max_length,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
