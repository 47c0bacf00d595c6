"""Translators: recurrent (Cho, Bahdanau, Luong) and Transformer models."""

from zoo.translation.rnn_translator import ConcatToSteps
from zoo.translation.rnn_translator import RNNTranslator
from zoo.translation.translator import Translator
