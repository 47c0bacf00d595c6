"""Attention Zoo layers: Keras 3 attention mechanisms (keras.ops only).

`from layers import LuongAttention` and friends. Every public layer is
registered as serialisable under the package name `attention_zoo`.
"""

from layers.attention import Attention
from layers.attention_rnn import AttentionRNN
from layers.attention_rnn_cell import AttentionRNNCell
from layers.bahdanau_attention import BahdanauAttention
from layers.luong_attention import LuongAttention
from layers.masking import causal_mask
from layers.masking import masked_softmax
from layers.masking import masked_sparsemax
from layers.masking import merge_attention_masks
from layers.masking import normalize_scores
from layers.scores import AdditiveScore
from layers.scores import CosineScore
from layers.scores import DotScore
from layers.scores import GeneralScore
from layers.scores import LocationScore
from layers.scores import ScaledDotScore
from layers.scores import Score
from layers.scores import get_score
