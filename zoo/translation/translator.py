"""Base class of the translators: a `SequenceGenerator` over source ids.

Sutskever, Vinyals & Le 2014, "Sequence to Sequence Learning with Neural
Networks"; beam search with the length penalty of Wu et al. 2016.
"""

import tensorflow as tf

from zoo.sequence_generator import SequenceGenerator


class Translator(SequenceGenerator):
    """A sequence-to-sequence model trained with teacher forcing.

    A `zoo.SequenceGenerator` whose inputs are `{"source": int32 [B, S],
    "target_in": int32 [B, T]}` (0 = padding). Subclasses implement
    `encode(source_ids, max_length)` and `decode_step`; `generate(
    source_ids, ...)` translates a batch of source ids (beam search
    defaults to the GNMT length penalty 0.6).

    Args:
        max_target_length: default maximum number of produced tokens.
        **kwargs: `SequenceGenerator` arguments (`start_id`, `end_id`) and
            `keras.Model` arguments (`inputs`, `outputs`, `name`).
    """

    max_length_key = "max_target_length"
    default_length_penalty = 0.6

    def __init__(self, *args, max_target_length=64, **kwargs):
        super().__init__(*args, max_length=max_target_length, **kwargs)

    @property
    def max_target_length(self):
        return self.max_length

    def prepare_inputs(self, inputs):
        return tf.cast(tf.convert_to_tensor(inputs), tf.int32)
