"""The project's TFDS builders for real corpora available offline.

Importing a module registers its builder with TFDS, so `tfds.builder(name)`
finds it. Keep this a plain list of imports.
"""

from experiments.datasets import digit_scenes
from experiments.datasets import digits
from experiments.datasets import ding_de_en
from experiments.datasets import gettext_de_en
from experiments.datasets import movie_sentences
