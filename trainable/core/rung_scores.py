"""Rung scores: what number a trial's learning curve so far stands for at an ASHA rung (no Ray).

ASHA compares trials at a rung by one number. Ray's is the val acc of the rung's epoch, one
noisy point; a curve rule looks at every epoch so far:

- last:  the val acc at the rung's epoch (Ray's ASHA, the default);
- best:  the best val acc so far (a dip at the rung's epoch does not count against it);
- mean2: the mean of the last two epochs (one epoch's noise halved);
- fit:   a saturating curve acc(t) = a - b / t fitted by least squares to the epochs so far,
         read at max_epochs, clipped to [0, 1] (with one epoch: that epoch's value).

Which one ranks configs like their final value is measured, not assumed
(benchmarks/lib/rung_rules.py, on full learning curves saved once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

RungScore = Callable[[Sequence[float], int], float]   # (val acc per epoch so far, max_epochs)


def last(curve: Sequence[float], max_epochs: int) -> float:
    return float(curve[-1])


def best(curve: Sequence[float], max_epochs: int) -> float:
    return float(max(curve))


def mean2(curve: Sequence[float], max_epochs: int) -> float:
    tail = curve[-2:]
    return float(sum(tail) / len(tail))


def fit(curve: Sequence[float], max_epochs: int) -> float:
    """acc(t) = a - b / t over t = 1..len(curve), least squares, read at t = max_epochs."""
    n = len(curve)
    if n < 2:
        return float(curve[-1])
    xs = [1.0 / t for t in range(1, n + 1)]          # the model is linear in 1/t
    mx, my = sum(xs) / n, sum(curve) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, curve, strict=True)) / sxx   # -b
    value = my + slope * (1.0 / max_epochs - mx)
    return min(1.0, max(0.0, value)) if math.isfinite(value) else float(curve[-1])


RUNG_SCORES: dict[str, RungScore] = {"last": last, "best": best, "mean2": mean2, "fit": fit}


def get_rung_score(name: str) -> RungScore:
    if name not in RUNG_SCORES:
        raise ValueError(f"rung score {name!r} is unknown; known: {', '.join(RUNG_SCORES)}")
    return RUNG_SCORES[name]
