"""The sequence-loss benchmark times equal work."""

import numpy as np
import pytest

from benchmarks.suite.sequence_loss import loss_steps

pytestmark = pytest.mark.tf_only


def test_the_three_losses_give_one_loss_and_gradient():
    # Each step returns the sums of its gradients (hidden states, kernel,
    # bias) and the squared loss it differentiates: the contenders must
    # agree, or the benchmark would compare different computations.
    results = {name: step() for name, step in loss_steps(500).items()}
    for name in ("formula", "ours"):
        np.testing.assert_allclose(
            results[name], results["keras"], rtol=1e-4, atol=1e-5
        )
    assert results["ours"][-1] > 0
