"""Named experiments of every task (explicit list: importing registers)."""

from experiments.configs import captioning
from experiments.configs import image_classification
from experiments.configs import text_classification
from experiments.configs import translation
