"""Search benchmark part 3: ASHA + TPE against random search with the full budget.

Per seed, three searches of equal trial counts: run_search as shipped (ASHA + TPE), the same
with the ASHA promotion cap, and Optuna's RandomSampler with no early stopping. Goal: the
best val acc within 1 point of random's, in at most a third of its epochs.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field

from benchmarks.lib.plan import Plan, search_cfg
from benchmarks.lib.trial_reports import has_clock, per_trial
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.tune.driver import run_search
from vidtune.trainable.tune.experiment import load_experiment

GOAL_ACC_GAP = 0.01          # ASHA+TPE best may trail random-full-budget best by 1 point at most
GOAL_EPOCH_RATIO = 1 / 3     # ... using at most a third of its epochs


@dataclass(frozen=True)
class SearchRun:
    method: str
    seed: int
    best_val_acc: float
    epochs: int
    trials: int
    wall_s: float
    in_trial_overhead_s: list[float]    # per trial: Ray's time_total_s - sum of its epoch_time_s
    in_function_s: list[float]          # the part of it inside the trial function (when known)
    curves: list[list[float]] = field(default_factory=list)   # per trial: val_acc at epochs 1, 2, ...


def search_run(cfg: SearchConfig, method: str) -> SearchRun:
    """One search, timed, and what the benchmark needs from its results folder."""
    t0 = time.perf_counter()
    outcome = run_search(cfg)
    wall = time.perf_counter() - t0
    exp = load_experiment(outcome.experiment_path)
    runs = per_trial(exp)
    overhead = [float(df["time_total_s"].iloc[-1] - df["epoch_time_s"].sum()) for df in runs]
    in_function = [float(df["reported_at"].iloc[-1] - df["started_at"].iloc[0] - df["epoch_time_s"].sum())
                   for df in runs if has_clock(df)]
    curves = [df["val_acc"].astype(float).tolist() for df in runs]
    return SearchRun(method, cfg.seed, float(exp.trials["best_val_acc"].max()),
                     int(exp.trials["epochs"].sum()), len(exp.trials), wall, overhead, in_function, curves)


def efficiency(plan: Plan, root: str) -> list[tuple[SearchRun, SearchRun, SearchRun]]:
    """Per seed: ASHA + TPE as shipped, the same with --asha-cap, random search with the full budget."""
    runs = []
    for seed in plan.seeds:
        # One 1-CPU trial per core, as the shipped defaults run on this machine (the benchmark's
        # Ray has at least 4 logical CPUs for part 5).
        common = dict(space=plan.search_space, num_samples=plan.num_samples,
                      max_epochs=plan.max_epochs, seed=seed, data=plan.search_data, cpus_per_trial=1,
                      max_concurrent=min(os.cpu_count() or 1, plan.num_samples))
        asha = search_run(search_cfg(root, f"asha-tpe-s{seed}", **common), "ASHA + TPE")
        capped = search_run(search_cfg(root, f"asha-cap-tpe-s{seed}", promotion_cap=True, **common),
                            "ASHA with promotion cap + TPE")
        rand = search_run(search_cfg(root, f"random-full-s{seed}", sampler="random",
                                     scheduler="none", **common), "random, full budget")
        runs.append((asha, capped, rand))
        print(f"seed {seed}: ASHA+TPE best {asha.best_val_acc:.4f} in {asha.epochs} epochs; capped "
              f"{capped.best_val_acc:.4f} in {capped.epochs}; random best {rand.best_val_acc:.4f} in "
              f"{rand.epochs} epochs", file=sys.stderr)
    return runs


def versus(runs: list[SearchRun], baseline: list[SearchRun]) -> tuple[float, float]:
    """Mean best val acc difference to the baseline, and the ratio of the epochs spent."""
    gap = statistics.mean(r.best_val_acc for r in runs) - statistics.mean(b.best_val_acc for b in baseline)
    return gap, sum(r.epochs for r in runs) / sum(b.epochs for b in baseline)
