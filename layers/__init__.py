"""Attention Zoo layers: Keras 3 attention mechanisms (keras.ops only).

`from layers import LuongAttention` and friends. Every public layer is
registered as serialisable under the package name `attention_zoo`.
"""

from layers.attention_pooling_1d import AttentionPooling1D
from layers.chunked_attention import blockwise_attention
from layers.chunked_attention import chunked_attention
from layers.hard_attention import HardAttention
from layers.masking import causal_mask
from layers.masking import masked_softmax
from layers.masking import masked_sparsemax
from layers.masking import merge_attention_masks
from layers.masking import normalize_scores
from layers.multi_head_attention import MultiHeadAttention
