"""Attention Zoo's performance harness: ratios against peers, machine limits.

`python -m benchmarks run` measures each registered benchmark
(`benchmarks/suite/`) in its own process, contenders interleaved side by
side, and writes `benchmarks/results/<machine>-<date>.json` and `.md`.
"""
