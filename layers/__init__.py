"""Attention Zoo layers: Keras 3 attention mechanisms (keras.ops only).

`from layers import LuongAttention` and friends. Every public layer is
registered as serialisable under the package name `attention_zoo`.
"""

from layers.attention import Attention
from layers.attention_lookup import get_attention
from layers.attention_pooling_1d import AttentionPooling1D
from layers.attention_rnn import AttentionRNN
from layers.attention_rnn_cell import AttentionRNNCell
from layers.bahdanau_attention import BahdanauAttention
from layers.cbam import CBAM
from layers.channel_attention import ChannelAttention
from layers.chunked_attention import blockwise_attention
from layers.chunked_attention import chunked_attention
from layers.efficient_channel_attention import EfficientChannelAttention
from layers.efficient_channel_attention import eca_kernel_size
from layers.gated_mlp_block import GatedMLPBlock
from layers.hard_attention import HardAttention
from layers.luong_attention import LuongAttention
from layers.masking import causal_mask
from layers.masking import masked_softmax
from layers.masking import masked_sparsemax
from layers.masking import merge_attention_masks
from layers.masking import normalize_scores
from layers.mixer_block import MixerBlock
from layers.multi_head_attention import MultiHeadAttention
from layers.non_local_block import NonLocalBlock
from layers.patch_embedding import PatchEmbedding
from layers.position_embedding import PositionEmbedding
from layers.scores import AdditiveScore
from layers.scores import CosineScore
from layers.scores import DotScore
from layers.scores import GeneralScore
from layers.scores import LocationScore
from layers.scores import ScaledDotScore
from layers.scores import Score
from layers.scores import get_score
from layers.self_attention_2d import SelfAttention2D
from layers.spatial_attention import SpatialAttention
from layers.squeeze_excite import SqueezeExcite
