"""Attention Zoo experiments: TFDS data, named configs and the runner."""
