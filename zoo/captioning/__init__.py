"""Image captioners (Show, Attend and Tell, Xu et al. 2015)."""

from zoo.captioning.captioner import Captioner
from zoo.captioning.show_attend_tell import ShowAttendTell
from zoo.captioning.show_attend_tell_decoder import ShowAttendTellDecoder

__all__ = ["Captioner", "ShowAttendTell", "ShowAttendTellDecoder"]
