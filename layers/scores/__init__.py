"""Attention score layers and their registry (Luong 2015, Bahdanau 2014)."""

from layers.scores.additive_score import AdditiveScore
from layers.scores.cosine_score import CosineScore
from layers.scores.dot_score import DotScore
from layers.scores.general_score import GeneralScore
from layers.scores.location_score import LocationScore
from layers.scores.registry import SCORES
from layers.scores.registry import create_score
from layers.scores.registry import get_score
from layers.scores.scaled_dot_score import ScaledDotScore
from layers.scores.score import Score
