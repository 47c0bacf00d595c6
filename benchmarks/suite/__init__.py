"""Every benchmark of the harness; importing this package registers them."""

from benchmarks.suite import decoding
from benchmarks.suite import gpu_attention
from benchmarks.suite import input_pipeline
from benchmarks.suite import long_sequences
from benchmarks.suite import matmul
from benchmarks.suite import score_attention
from benchmarks.suite import self_attention
from benchmarks.suite import sequence_loss
from benchmarks.suite import serving
from benchmarks.suite import time_to_accuracy
from benchmarks.suite import transformer_mfu
from benchmarks.suite import vision_overhead
