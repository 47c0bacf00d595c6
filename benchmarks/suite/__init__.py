"""Every benchmark of the harness; importing this package registers them."""

from benchmarks.suite import matmul
from benchmarks.suite import score_attention
from benchmarks.suite import self_attention
