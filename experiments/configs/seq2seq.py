"""Evaluation settings shared by the sequence-generation tasks
(translation, image captioning): the two searches and their parameters."""

import dataclasses

from experiments.config import EvalConfig

# The searches every sequence-generation task evaluates and exports
# (`zoo.decoding.SEARCH_METHODS`, named here without importing TensorFlow).
SEARCHES = ("greedy", "beam")


@dataclasses.dataclass
class Seq2SeqEvalConfig(EvalConfig):
    """Evaluation of a sequence generator.

    Attributes:
        beam_width: beams of the beam search.
        length_penalty: GNMT length penalty alpha of the beam search.
        samples: generated samples written beside their references.
        export_search: search of the exported `serving_default`, `"beam"`
            or `"greedy"` (the other is exported as a second signature).
    """

    beam_width: int = 4
    length_penalty: float = 0.0
    samples: int = 20
    export_search: str = "beam"
