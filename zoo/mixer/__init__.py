"""MLP-Mixer image classifiers (Tolstikhin et al. 2021)."""

from zoo.mixer.mlp_mixer import mlp_mixer
