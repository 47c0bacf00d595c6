"""Summary statistics of timing samples and ratios between contenders.

Every figure the harness reports is a median with its spread (the
interquartile range and the extremes), and every comparison is a ratio of
two contenders measured side by side: the ratio of their medians, plus the
spread of the per-round ratios (sample `k` of two interleaved contenders
was taken close together, so their ratio cancels most load drift).
"""

import math

import numpy as np


def summarize(samples):
    """`{"median", "p25", "p75", "iqr", "min", "max", "n"}` of `samples`.

    Raises:
        ValueError: `samples` is empty or holds a non-finite value.
    """
    values = np.asarray(list(samples), "float64")
    if values.size == 0:
        raise ValueError("Cannot summarize no samples. Received: samples=[]")
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"Samples must be finite. Received: samples={values.tolist()}"
        )
    p25, median, p75 = np.percentile(values, [25, 50, 75])
    return {
        "median": float(median),
        "p25": float(p25),
        "p75": float(p75),
        "iqr": float(p75 - p25),
        "min": float(values.min()),
        "max": float(values.max()),
        "n": int(values.size),
    }


def ratio(baseline, candidate):
    """How many times faster `candidate` is than `baseline`.

    Args:
        baseline: samples (times) of the reference, e.g. Keras's layer.
        candidate: samples of the contender, taken interleaved with
            `baseline` (same count, sample `k` of both close in time), or
            any samples (then only the ratio of medians is given).

    Returns:
        `{"speedup": median(baseline) / median(candidate), "paired": ...}`
        where `paired` summarizes the per-sample ratios
        `baseline[k] / candidate[k]` (None when the counts differ).
        `speedup > 1` means the candidate takes less time.
    """
    base = summarize(baseline)
    cand = summarize(candidate)
    if cand["median"] <= 0:
        raise ValueError(
            "The candidate's median time must be positive. Received: "
            f"median={cand['median']}"
        )
    paired = None
    b = np.asarray(list(baseline), "float64")
    c = np.asarray(list(candidate), "float64")
    if b.size == c.size and np.all(c > 0):
        paired = summarize(b / c)
    return {"speedup": base["median"] / cand["median"], "paired": paired}


def percentile(samples, q):
    """The `q`-th percentile (0-100) of `samples` (linear interpolation)."""
    values = np.asarray(list(samples), "float64")
    if values.size == 0:
        raise ValueError("No samples. Received: samples=[]")
    return float(np.percentile(values, q))


def meets(value, target, comparison):
    """Whether `value` meets `target` under `comparison` (">=" or "<=").

    None (not measured) or NaN never meets a goal: returns None.
    """
    if comparison not in (">=", "<="):
        raise ValueError(
            f"`comparison` must be '>=' or '<='. Received: {comparison!r}"
        )
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value >= target if comparison == ">=" else value <= target)
