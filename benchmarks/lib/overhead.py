"""Search benchmark part 4: what Ray adds around a trial, from a search of no-op-sized trials.

Sequential trials of one epoch of a tiny model on a few tiny clips: the start-to-start
interval minus the epoch is what each trial costs beyond its work (actor start, setup,
report, checkpoint, scheduling).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.lib.plan import Plan, search_cfg
from benchmarks.lib.trial_reports import per_trial, span
from vidtune.data import DataConfig
from vidtune.trainable.tune.driver import run_search
from vidtune.trainable.tune.experiment import load_experiment

NOOP_DATA = DataConfig(num_clips=40, frames=2, height=8, width=8, noise=0.2)


@dataclass(frozen=True)
class NoopOverhead:
    trials: int
    wall_s: float              # the whole run_search call
    cycle_s: float             # median start-to-start interval of consecutive trials
    epoch_s: float             # median epoch of these no-op-sized trials

    @property
    def per_trial_s(self) -> float:
        return self.cycle_s - self.epoch_s


def noop_overhead(plan: Plan, root: str) -> NoopOverhead | None:
    """Sequential trials of one epoch of a tiny model on a few tiny clips (None: skipped)."""
    if plan.noop_trials < 2:
        return None
    cfg = search_cfg(root, "noop", space="tiny", num_samples=plan.noop_trials, max_epochs=1,
                     max_concurrent=1, scheduler="none", cpus_per_trial=1, data=NOOP_DATA)
    t0 = time.perf_counter()
    outcome = run_search(cfg)
    wall = time.perf_counter() - t0
    runs = per_trial(load_experiment(outcome.experiment_path))
    starts = [span(df)[0] for df in runs]
    cycles = np.diff(starts).tolist() or [wall]
    epochs = [float(df["epoch_time_s"].iloc[0]) for df in runs]
    return NoopOverhead(len(runs), wall, statistics.median(cycles), statistics.median(epochs))
