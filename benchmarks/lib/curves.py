"""Pure functions over learning curves and trial spans (no I/O): what the search benchmark
derives from per-epoch val acc and from each trial's start and end times."""

from __future__ import annotations

import pandas as pd

from vidtune.analysis.tables import asha_milestones


def halving_in_hindsight(curves: list[list[float]], grace: int, rf: float,
                         max_epochs: int) -> tuple[float, int]:
    """Synchronous successive halving replayed on full learning curves: (best val acc, epochs).

    At each of ASHA's milestones the survivors are ranked by their val acc at that epoch and
    the top max(1, floor(n / rf)) go on; the rest stop there. Seeing every survivor at once is
    the best case for a rule that ranks by val acc at ASHA's rungs and keeps 1 in rf, so the
    gap between this and the full curves' best is what the early epochs cost such a rule.
    """
    full = [c for c in curves if len(c) >= max_epochs]
    if not full:
        return float("nan"), 0
    alive = list(range(len(full)))
    stopped_at: dict[int, int] = {}
    for milestone in asha_milestones(grace, rf, max_epochs):
        ranked = sorted(alive, key=lambda i: full[i][milestone - 1], reverse=True)
        alive = ranked[: max(1, int(len(ranked) // rf))]
        stopped_at.update({i: milestone for i in ranked[len(alive):]})
    ran = {i: stopped_at.get(i, max_epochs) for i in range(len(full))}
    return max(max(full[i][:e]) for i, e in ran.items()), sum(ran.values())


def rank_agreement(curves: list[list[float]], max_epochs: int) -> list[float]:
    """Rank correlation (Spearman) of val acc at epochs 1 .. max-1 with the final epoch's."""
    full = pd.DataFrame([c[:max_epochs] for c in curves if len(c) >= max_epochs])
    ranks = full.rank()
    return [float(ranks[e].corr(ranks[max_epochs - 1])) for e in range(max_epochs - 1)]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end and a start at the same time do not overlap)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = best = 0
    for _, step in events:          # at equal times -1 sorts first
        running += step
        best = max(best, running)
    return best
