"""Image captioners: Show, Attend and Tell (Xu et al. 2015, soft and hard
attention) and a Transformer decoder over the same encoder."""

from zoo.captioning.captioner import Captioner
from zoo.captioning.show_attend_tell import ShowAttendTell
from zoo.captioning.show_attend_tell_decoder import ShowAttendTellDecoder
from zoo.captioning.show_attend_tell_objective import HardAttentionObjective
from zoo.captioning.transformer_captioner import TransformerCaptioner

__all__ = [
    "Captioner",
    "HardAttentionObjective",
    "ShowAttendTell",
    "ShowAttendTellDecoder",
    "TransformerCaptioner",
]
