"""The race at equal wall time: what each method's minutes bring.

Users buy minutes of a cluster, not trials. Every method gets the same budget B from its
start (Ray's start included) and runs as many trials as fit (benchmarks/lib/race.py runs
them). Per space, over the seeds:

- best val acc by B/4, B/2 and B: the median over seeds of the best-so-far at that moment
  (reports after B do not count: Optuna's timeout and Ray's budget may let a trial run on);
- the target: the best peer's median best at B (a peer is any method but vidtune itself);
- time to target: the first moment a run's best-so-far reaches it (never: infinite), the
  median over seeds per method;
- the anytime curve: the median best-so-far against wall time, one line per method.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.lib.race import RaceRun

FRACTIONS = (0.25, 0.5, 1.0)   # the moments of the budget the table reports
GOAL_TTT_RATIO = 0.5           # vidtune's median time to target <= 0.5 x the best peer's
VIDTUNE = "vidtune"


def is_peer(method: str) -> bool:
    return method.split(":")[0] != VIDTUNE


def _median(xs: list[float]) -> float:
    """Median that keeps inf (never) and NaN (no report yet: counts as 0 val acc)."""
    return statistics.median(xs) if xs else math.nan


@dataclass(frozen=True)
class BudgetStanding:
    """One space's figures at equal wall time."""

    space: str
    budget_s: float
    methods: tuple[str, ...]
    best_at: dict[str, tuple[float, ...]]    # method -> median best by B*f for f in FRACTIONS
    target: float                            # the best peer's median best at B
    target_from: str                         # that peer
    ttt: dict[str, dict[int, float]]         # method -> seed -> time to target (s)
    median_ttt: dict[str, float]
    median_trials: dict[str, float]
    median_epochs: dict[str, float]


def budget_standing(runs: list[RaceRun], space: str, budget_s: float) -> BudgetStanding:
    mine = [r for r in runs if r.space == space]
    if not mine:
        raise ValueError(f"no runs on space {space!r}; spaces raced: "
                         f"{', '.join(sorted({r.space for r in runs}))}")
    methods = tuple(dict.fromkeys(r.method for r in mine))

    def of(m: str) -> list[RaceRun]:
        return [r for r in mine if r.method == m]

    def best(r: RaceRun, t: float) -> float:
        b = r.best_by(t)
        return 0.0 if math.isnan(b) else b   # nothing reported yet: no model at all

    best_at = {m: tuple(_median([best(r, f * budget_s) for r in of(m)]) for f in FRACTIONS)
               for m in methods}
    peers = [m for m in methods if is_peer(m)] or list(methods)
    target_from = max(peers, key=lambda m: best_at[m][-1])
    target = best_at[target_from][-1]
    ttt = {m: {r.seed: (t if (t := r.time_to(target)) <= budget_s else math.inf) for r in of(m)}
           for m in methods}
    return BudgetStanding(
        space, budget_s, methods, best_at, target, target_from, ttt,
        median_ttt={m: _median(list(ttt[m].values())) for m in methods},
        median_trials={m: _median([float(r.trials) for r in of(m)]) for m in methods},
        median_epochs={m: _median([float(r.epochs) for r in of(m)]) for m in methods},
    )


def goal_rows(st: BudgetStanding) -> list[tuple[str, str, str, bool | None]]:
    """(figure, measured, goal, met) for vidtune against every peer on this space; met None
    when vidtune or every peer is absent."""
    if VIDTUNE not in st.methods:
        return []
    peers = [m for m in st.methods if is_peer(m)]
    if not peers:
        return []
    rows: list[tuple[str, str, str, bool | None]] = []
    for i, f in enumerate(FRACTIONS):
        top = max(peers, key=lambda m: st.best_at[m][i])
        gap = st.best_at[VIDTUNE][i] - st.best_at[top][i]
        rows.append((f"median best val acc by {_frac(f)}, vidtune - best peer",
                     f"{100 * gap:+.1f} pt (vs {top} {st.best_at[top][i]:.3f})", ">= 0 pt",
                     gap >= -1e-12))
    fastest = min(peers, key=lambda m: st.median_ttt[m])
    mine, theirs = st.median_ttt[VIDTUNE], st.median_ttt[fastest]
    ratio = mine / theirs if math.isfinite(theirs) and theirs > 0 else (
        0.0 if math.isfinite(mine) else math.inf)
    rows.append(("median time to target, vidtune / best peer",
                 f"{ratio:.2f}x ({_s(mine)} vs {fastest} {_s(theirs)})",
                 f"<= {GOAL_TTT_RATIO}x", ratio <= GOAL_TTT_RATIO))
    return rows


def _frac(f: float) -> str:
    return {0.25: "B/4", 0.5: "B/2", 1.0: "B"}.get(f, f"{f:g}B")


def _s(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.0f} s"


def anytime(runs: list[RaceRun], method: str, grid: np.ndarray) -> np.ndarray:
    """Median over seeds of the best-so-far at each time of grid (0 before a first report)."""
    curves = np.vstack([np.nan_to_num(r.best_so_far(grid), nan=0.0)
                        for r in runs if r.method == method])   # (seeds, len(grid))
    return np.median(curves, axis=0)


def plot_budget(runs: list[RaceRun], spaces: list[str], budget_s: float, png: str | Path) -> Path:
    """One panel per space: the median best-so-far against wall time, one line per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = np.linspace(0, budget_s, 400)
    fig = Figure(figsize=(6.0 * len(spaces), 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(spaces), squeeze=False)[0]
    for ax, space in zip(axes, spaces, strict=True):
        mine = [r for r in runs if r.space == space]
        for method in dict.fromkeys(r.method for r in mine):
            n = sum(r.method == method for r in mine)
            ax.plot(grid, anytime(mine, method, grid), label=f"{method} ({n} seeds)", linewidth=2)
        for f in FRACTIONS[:-1]:
            ax.axvline(f * budget_s, color="grey", alpha=0.3, linestyle=":")
        ax.set_xlabel("wall time since the method started (s)")
        ax.set_ylabel("best val acc so far (median over seeds)")
        ax.set_title(f"space `{space}`, {budget_s:.0f} s each")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, format="png")
    return Path(png)
