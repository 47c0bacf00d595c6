"""Text classifiers of the zoo: raw strings in, class probabilities out.

Registered models (task `"text_classification"`): `bigru_attention`,
`bigru_luong`, `bigru_hard_attention`, `bigru_maxpool`, `han`,
`transformer_classifier`. `build_vocabulary` makes the vocabulary a model
is built with; `word_attention` reads which words a model attended to.
"""

from zoo.text.fold_sentences import FoldSentences
from zoo.text.hierarchical_attention_network import han
from zoo.text.learned_query import LearnedQuery
from zoo.text.masked_global_pooling_1d import MaskedGlobalPooling1D
from zoo.text.recurrent_classifier import bigru_classifier
from zoo.text.sentence_split import SentenceSplit
from zoo.text.sinusoidal_position_encoding import SinusoidalPositionEncoding
from zoo.text.text_inputs import build_vocabulary
from zoo.text.text_inputs import make_vectorizer
from zoo.text.text_inputs import standardize_text
from zoo.text.text_inputs import tokenize
from zoo.text.transformer_classifier import transformer_classifier
from zoo.text.unfold_sentences import UnfoldSentences
from zoo.text.word_attention import TextAttention
from zoo.text.word_attention import attention_function
from zoo.text.word_attention import word_attention
