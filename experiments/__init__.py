"""Attention Zoo experiments: named configs, task plugins, one runner.

`python -m experiments list` / `run NAME` / `ablate NAME` (see
`experiments.cli`); programmatic use: `experiments.runner.run(config)`.
"""
