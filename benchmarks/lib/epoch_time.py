"""Search benchmark part 1: the epoch time of a trial inside Ray against the plain loop.

The plain loop is run_trial in this process with a no-op report; the Ray trial is a real
one-trial run_search of the same config (report and checkpoint every epoch). Both run the
same code at the same threads, so any difference is what Ray costs, or the machine's drift:
the plain loop runs before Ray starts and again after it has stopped, and its own spread
says how far the machine moved.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks.lib.common import Verdict, spread
from benchmarks.lib.trial_reports import per_trial, report_intervals, span
from vidtune.search_spaces import get_space
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import limit_resources, run_trial
from vidtune.trainable.tune.driver import run_search
from vidtune.trainable.tune.experiment import load_experiment

GOAL_RAY_RATIO = 1.05        # Ray epoch / plain-loop epoch


def _steady(xs: list[float]) -> list[float]:
    return xs[1:] if len(xs) > 1 else xs


@dataclass(frozen=True)
class EpochTimes:
    plain_epoch_s: list[list[float]]     # epoch_time_s as fit() measures it; runs before and after Ray's
    ray_epoch_s: list[float]
    plain_between_s: list[list[float]]   # between consecutive reports (epochs 2+), per run
    ray_between_s: list[float]           # includes Ray's report and the per-epoch checkpoint
    ray_search_s: float                  # the whole one-trial run_search call
    ray_trial_s: float                   # its trial, from the trainable's start to its last report

    @property
    def around_trial_s(self) -> float:
        """What a one-trial search costs beyond its trial: Tune start-up, actor, teardown."""
        return self.ray_search_s - self.ray_trial_s

    @property
    def epoch_ratio(self) -> float:
        """Steady state: medians over epochs 2+ (epoch 1 of the Ray trial overlaps Tune's start-up)."""
        plain = [x for run in self.plain_epoch_s for x in _steady(run)]
        return statistics.median(_steady(self.ray_epoch_s)) / statistics.median(plain)

    @property
    def first_epoch_ratio(self) -> float:
        return self.ray_epoch_s[0] / statistics.mean(run[0] for run in self.plain_epoch_s)

    @property
    def between_ratio(self) -> float | None:
        plain = [x for run in self.plain_between_s for x in run]
        if not plain or not self.ray_between_s:
            return None
        return statistics.median(self.ray_between_s) / statistics.median(plain)

    @property
    def ratio(self) -> float:
        """The figure judged: between reports when there is one (it includes checkpointing)."""
        between = self.between_ratio
        return self.epoch_ratio if between is None else max(between, self.epoch_ratio)

    @property
    def noise(self) -> float:
        """The plain loop's own spread, (max - min) / median of its epochs 2+ over both runs.

        Nothing but the same loop ran then, so this is how far the machine's speed moved.
        """
        return spread([x for run in self.plain_epoch_s for x in _steady(run)])

    @property
    def verdict(self) -> Verdict:
        # The goal has to resolve a 5 % cost: a machine whose own speed moves by more than
        # that cannot tell it from drift, whichever side of the goal the ratio falls.
        margin = GOAL_RAY_RATIO - 1
        if self.noise > margin:
            return Verdict(None, f"the plain loop's own epochs vary by {100 * self.noise:.1f} %, "
                                 f"more than the {100 * margin:.0f} % the goal has to resolve")
        return Verdict(self.ratio <= GOAL_RAY_RATIO)


def plain_loop(cfg: SearchConfig) -> tuple[list[float], list[float]]:
    """run_trial in this process, threads = cpus_per_trial: (epoch_time_s, between reports)."""
    stamps: list[float] = []
    epoch_s: list[float] = []

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        stamps.append(time.perf_counter())
        epoch_s.append(float(metrics["epoch_time_s"]))

    threads = torch.get_num_threads()
    try:
        device, _ = limit_resources(cfg)
        run_trial(dict(get_space(cfg.space).default), cfg, report, device=device)
    finally:
        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()   # leave the GPU to the Ray trials that follow
    return epoch_s, np.diff(stamps).tolist()


def ray_trial(cfg: SearchConfig) -> tuple[list[float], list[float], float, float]:
    """A real one-trial run_search (the space's seed default).

    Returns epoch_time_s per epoch, seconds between reports, the search's and the trial's wall time.
    """
    t0 = time.perf_counter()
    outcome = run_search(cfg)
    wall = time.perf_counter() - t0
    (df,) = per_trial(load_experiment(outcome.experiment_path))
    start, end = span(df)
    return df["epoch_time_s"].astype(float).tolist(), report_intervals(df), wall, end - start
