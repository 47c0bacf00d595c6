"""TFDS builders for real corpora available offline (registered on import)."""

from experiments.datasets import digit_scenes
from experiments.datasets import ding_de_en
from experiments.datasets import movie_sentences
