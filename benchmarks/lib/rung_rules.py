"""Rung rules judged on full learning curves, load-independent and in milliseconds.

Two measures over curves saved once (benchmarks/lib/full_curves.py):

- rank correlation: Spearman of each rung score (trainable/core/rung_scores.py) at epoch m
  with the config's final value (its best val acc over all epochs, what a search reports);
- a replay of asynchronous ASHA on `slots` workers: configs arrive in a random order (the
  space's first trial first, as in vidtune; the rest drawn with replacement from the saved
  random configs), each epoch costs that config's median measured epoch time, and the
  best-so-far is read at B/4, B/2 and B. Two kinds:
  - stop (Ray's ASHA): at a rung a trial continues if its score is at or above the (1 - 1/rf)
    quantile of the scores recorded there before it, else it stops for good;
  - promote (Syne Tune's promotion-type ASHA): a trial pauses at every rung; a free worker
    first resumes the best paused trial of the highest rung whose score is at or above that
    rung's quantile (counting every record there), else starts a new config.
  A resume costs `resume_s` (a restart from the checkpoint), as a new trial costs `start_s`.

The replay leaves out what it cannot know offline (TPE's proposals learn from results; the
cost rule), so it compares the rung rules with each other, not vidtune with its peers.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vidtune.analysis.tables import asha_milestones
from vidtune.trainable.core.rung_scores import RUNG_SCORES, get_rung_score


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    return float(pd.Series(list(xs)).rank().corr(pd.Series(list(ys)).rank()))


def rule_correlations(curves: list[list[float]], max_epochs: int,
                      epochs: Sequence[int] = (1, 2, 3)) -> dict[str, dict[int, float]]:
    """rule -> epoch m -> Spearman of the rule's score on epochs 1..m with the best val acc."""
    full = [c[:max_epochs] for c in curves if len(c) >= max_epochs]
    final = [max(c) for c in full]
    return {name: {m: spearman([score(c[:m], max_epochs) for c in full], final) for m in epochs}
            for name, score in RUNG_SCORES.items()}


def rank_of_best(curves: list[list[float]], max_epochs: int, m: int, rule: str) -> int:
    """Where the config with the highest final value ranks (1 = first) by the rule at epoch m."""
    full = [c[:max_epochs] for c in curves if len(c) >= max_epochs]
    winner = max(range(len(full)), key=lambda i: max(full[i]))
    score = get_rung_score(rule)
    mine = score(full[winner][:m], max_epochs)
    return 1 + sum(score(c[:m], max_epochs) > mine for c in full)


@dataclass(frozen=True)
class Pool:
    curves: list[list[float]]     # val acc per epoch, max_epochs each; index 0: the first trial
    epoch_s: list[float]          # each config's seconds per epoch


def _cutoff(values: list[float], rf: float) -> float | None:
    return float(np.nanpercentile(values, (1 - 1 / rf) * 100)) if values else None


def replay(pool: Pool, order: list[int], kind: str, rule: str, slots: int, budget_s: float,
           grace: int, rf: float, max_epochs: int, start_s: float = 0.0,
           resume_s: float = 0.0) -> list[tuple[float, float]]:
    """(time, val acc) of every epoch trained within budget_s, in time order."""
    if kind not in ("stop", "promote"):
        raise ValueError(f"kind is {kind!r}; known: stop, promote")
    score = get_rung_score(rule)
    milestones = sorted(asha_milestones(grace, rf, max_epochs))
    rungs: dict[int, list[tuple[float, int]]] = {m: [] for m in milestones}   # (score, job)
    paused: dict[int, list[tuple[float, int]]] = {m: [] for m in milestones}
    trial_cfg: list[int] = []          # job -> config index
    reports: list[tuple[float, float]] = []
    queue = iter(order)
    events: list[tuple[float, int, int, int]] = []   # (time free, seq, job, epochs done)
    seq = 0

    def start(now: float) -> None:
        """A free worker: resume a promotable paused trial (promote), else a new config."""
        nonlocal seq
        if kind == "promote":
            for m in reversed(milestones):
                # As Syne Tune's Rung.quantile: no cutoff below two records (a lone trial
                # would always be promoted).
                cut = _cutoff([s for s, _ in rungs[m]], rf) if len(rungs[m]) >= 2 else None
                if paused[m] and cut is not None:
                    s, job = max(paused[m])
                    if s >= cut:
                        paused[m].remove((s, job))
                        run(now + resume_s, job, m)
                        return
        cfg = next(queue, None)
        if cfg is None:
            return
        trial_cfg.append(cfg)
        run(now + start_s, len(trial_cfg) - 1, 0)

    def run(now: float, job: int, done: int) -> None:
        """Train job from epoch `done` to its next milestone (or max_epochs), epoch by epoch."""
        nonlocal seq
        cfg = trial_cfg[job]
        stop_at = next((m for m in milestones if m > done), max_epochs)
        t = now
        for e in range(done, stop_at):
            t += pool.epoch_s[cfg]
            if t > budget_s:
                return
            reports.append((t, pool.curves[cfg][e]))
        seq += 1
        heapq.heappush(events, (t, seq, job, stop_at))

    now = 0.0
    for _ in range(slots):
        start(now)
    while events:
        now, _, job, done = heapq.heappop(events)
        if done in rungs and done < max_epochs:
            s = score(pool.curves[trial_cfg[job]][:done], max_epochs)
            if kind == "stop":
                cut = _cutoff([v for v, _ in rungs[done]], rf)
                rungs[done].append((s, job))
                if cut is None or s >= cut:
                    run(now, job, done)       # continues on the same worker
                    continue
            else:
                rungs[done].append((s, job))
                paused[done].append((s, job))
        start(now)
    return sorted(reports)


def best_by(reports: list[tuple[float, float]], t: float) -> float:
    return max((acc for s, acc in reports if s <= t), default=0.0)


def time_to(reports: list[tuple[float, float]], target: float) -> float:
    return next((s for s, acc in sorted(reports) if acc >= target - 1e-12), math.inf)


def orders(n_configs: int, draws: int, n_orders: int, seed: int = 0,
           first: bool = True) -> list[list[int]]:
    """The first trial (index 0) first (first=False: not at all), then draws configs from
    1..n-1 with replacement."""
    rng = random.Random(seed)
    return [[0] * first + [rng.randrange(1, n_configs) for _ in range(draws)]
            for _ in range(n_orders)]


def replay_table(pool: Pool, variants: list[tuple[str, str]], slots: int, budget_s: float,
                 grace: int, rf: float, max_epochs: int, n_orders: int = 200,
                 start_s: float = 0.0, resume_s: float = 0.0, target: float | None = None,
                 first: bool = True) -> dict[tuple[str, str], dict[str, float]]:
    """(kind, rule) -> median best by B/4, B/2, B over the orders, mean best by B, and the
    median time to `target` (default: the second-best final value in the pool)."""
    finals = sorted((max(c) for c in pool.curves), reverse=True)
    target = finals[1] if target is None and len(finals) > 1 else (target or finals[0])
    out: dict[tuple[str, str], dict[str, float]] = {}
    for kind, rule in variants:
        runs = [replay(pool, o, kind, rule, slots, budget_s, grace, rf, max_epochs, start_s,
                       resume_s) for o in orders(len(pool.curves), 400, n_orders, first=first)]
        out[kind, rule] = {
            "B/4": statistics.median(best_by(r, budget_s / 4) for r in runs),
            "B/2": statistics.median(best_by(r, budget_s / 2) for r in runs),
            "B": statistics.median(best_by(r, budget_s) for r in runs),
            "mean B": statistics.mean(best_by(r, budget_s) for r in runs),
            "reached": sum(math.isfinite(time_to(r, target)) for r in runs) / len(runs),
            "ttt": statistics.median(time_to(r, target) for r in runs),
            "target": target,
        }
    return out


def prior_distance(params: dict, prior: dict, log_params: Sequence[str] = ("lr", "weight_decay")) -> float:
    """How far a config lies from the user's prior (the seed configuration): the sum over the
    prior's parameters of |log10 ratio| for log-scale ones, |relative difference| for other
    numbers, and 1 for a different category."""
    d = 0.0
    for k, v in prior.items():
        if k not in params:
            continue
        x = params[k]
        if k in log_params:
            d += abs(math.log10(float(x) / float(v)))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            d += abs(float(x) - float(v)) / max(abs(float(v)), 1e-12)
        else:
            d += float(x != v)
    return d
