"""Translators: recurrent (Cho, Bahdanau, Luong) and Transformer models."""

from zoo.translation.rnn_translator import ConcatToSteps
from zoo.translation.rnn_translator import DeepOutput
from zoo.translation.rnn_translator import RNNTranslator
from zoo.translation.token_position_embedding import TokenPositionEmbedding
from zoo.translation.transformer_decoder_block import TransformerDecoderBlock
from zoo.translation.transformer_encoder_block import TransformerEncoderBlock
from zoo.translation.transformer_translator import TransformerTranslator
from zoo.translation.translator import Translator
