"""gMLP image classifiers (Liu et al. 2021)."""

from zoo.gmlp.gmlp import gmlp
