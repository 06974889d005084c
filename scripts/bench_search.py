"""Benchmark (issue 7): what the search costs and what it buys, measured side by side in one run.

1. Epoch time of a trial inside Ray (a real one-trial run_search, default model and data)
   against the same epoch in the plain loop (run_trial in this process, same threads).
   Goal: Ray <= 1.05x the plain loop.
2. Data-loading share of epoch time (bench_data's measurement, same threads). Goal <= 5 %.
3. Search efficiency on a reduced synthetic benchmark: ASHA + TPE (run_search as shipped)
   against random search with the full budget (Optuna RandomSampler, no early stopping), at
   equal trial counts, over several seeds. Goal: best val acc within 1 point, <= 1/3 the epochs.
   Also measured: the same ASHA with its promotion cap on (`vidtune search --asha-cap`), and,
   from the random searches' full learning curves, how well early epochs rank the configs:
   rank correlation with the last epoch, and successive halving at ASHA's rungs replayed in
   hindsight (the best a rule that ranks by val acc at the rungs and keeps 1 in rf can do).
4. Per-trial overhead: inside the trial (Ray's time_total_s minus the epochs) and around it
   (part 1's one-trial search minus its trial; a sequential search of no-op-sized trials:
   start-to-start interval minus the epoch).
5. Fractional GPUs: Ray with one GPU (a fake one on a CPU machine) and >= 4 CPUs,
   gpus_per_trial=0.25; the most trials seen running at once from their start/end
   timestamps. Goal: 4.
6. On a CUDA machine only: aggregate throughput of 4 packed trials against 1 trial alone.

    python scripts/bench_search.py           # about 20 minutes on 2 cores
    python scripts/bench_search.py --smoke   # tiny sizes, under a minute: checks the script runs

Writes its own section of docs/benchmarks.md (between `<!-- bench_search:start/end -->`).
Ray is always started here as an embedded local instance (address="local"), never joined.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
import torch

from vidtune.analysis.tables import asha_milestones
from vidtune.data import DataConfig, load_arrays, make_loaders
from vidtune.scripts.bench_data import (
    DataShare,
    data_share_rows,
    describe_data,
    describe_model,
    machine_line,
    measure_data_share,
    verdict,
    write_section,
)
from vidtune.search_spaces import get_space
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import limit_resources, run_trial, trial_configs
from vidtune.trainable.tune.driver import make_trainable, run_search
from vidtune.trainable.tune.experiment import load_experiment

KEY = "bench_search"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
GOAL_RAY_RATIO = 1.05        # Ray epoch / plain-loop epoch
GOAL_SHARE = 0.05            # data loading / epoch
GOAL_ACC_GAP = 0.01          # ASHA+TPE best may trail random-full-budget best by 1 point at most
GOAL_EPOCH_RATIO = 1 / 3     # ... using at most a third of its epochs
GPU_FRACTION = 0.25          # part 5: four trials per (fake) GPU


@dataclass(frozen=True)
class Plan:
    """Every size of the run; --smoke swaps in tiny ones."""

    smoke: bool
    overhead_data: DataConfig          # parts 1, 2 (the default CPU config)
    overhead_space: str                # its seed default is the model of parts 1, 2
    overhead_epochs: int
    cpus: int                          # cpus_per_trial of part 1 = torch threads of parts 1, 2
    data_repeats: int
    search_data: DataConfig            # part 3 (reduced synthetic config)
    search_space: str
    num_samples: int
    max_epochs: int
    seeds: tuple[int, ...]
    noop_trials: int                   # part 4 (0: skip the no-op search)
    pack_trials: int                   # part 5
    pack_epochs: int
    tiny_data: DataConfig = field(default_factory=lambda: DataConfig(
        num_clips=200, frames=6, height=16, width=16, noise=0.2))


def make_plan(args: argparse.Namespace) -> Plan:
    if args.smoke:
        tiny = DataConfig(num_clips=64, frames=4, height=16, width=16, noise=0.2)
        plan = Plan(smoke=True, overhead_data=tiny, overhead_space="tiny", overhead_epochs=2,
                    cpus=1, data_repeats=1,
                    search_data=DataConfig(num_clips=100, frames=4, height=16, width=16, noise=0.2),
                    search_space="tiny", num_samples=2, max_epochs=2, seeds=(0,),
                    noop_trials=0, pack_trials=4, pack_epochs=2, tiny_data=tiny)
    else:
        plan = Plan(smoke=False, overhead_data=DataConfig(), overhead_space="default",
                    overhead_epochs=4, cpus=int(SearchConfig().cpus_per_trial), data_repeats=3,
                    # Reduced for time: 500 clips of 6x16x16, 150 of them val (0.67 points each).
                    search_data=DataConfig(num_clips=500, frames=6, height=16, width=16,
                                           val_fraction=0.3),
                    search_space="default", num_samples=12, max_epochs=SearchConfig().max_epochs,
                    seeds=(0, 1, 2), noop_trials=6, pack_trials=8, pack_epochs=3)
    overrides: dict[str, Any] = {}
    if args.seeds is not None:
        overrides["seeds"] = tuple(range(args.seeds))
    if args.num_samples is not None:
        overrides["num_samples"] = args.num_samples
    if args.cpus_per_trial is not None:
        overrides["cpus"] = args.cpus_per_trial
    if args.data_repeats is not None:
        overrides["data_repeats"] = args.data_repeats
    return replace(plan, **overrides)


# -- reading Ray's results -------------------------------------------------------------------

def trial_runs(experiment: str) -> list[pd.DataFrame]:
    """Each trial's reported rows (Ray's progress.csv), ordered by start."""
    runs = [pd.read_csv(csv) for csv in Path(experiment).glob("*/progress.csv") if csv.stat().st_size]
    return sorted(runs, key=lambda df: span(df)[0])


def span(df: pd.DataFrame) -> tuple[float, float]:
    """(start, end) of a trial in wall-clock seconds: the trainable's start to its last report.

    Prefers the float started_at/reported_at the adapter reports; falls back on Ray's whole-
    second timestamp minus the first iteration's duration.
    """
    if "started_at" in df and "reported_at" in df:
        return float(df["started_at"].iloc[0]), float(df["reported_at"].iloc[-1])
    return (float(df["timestamp"].iloc[0] - df["time_this_iter_s"].iloc[0]),
            float(df["timestamp"].iloc[-1]))


def report_intervals(df: pd.DataFrame) -> list[float]:
    """Seconds between consecutive reports of one trial (one per epoch after the first)."""
    if "reported_at" in df:
        return np.diff(df["reported_at"].to_numpy(float)).tolist()
    return df["time_this_iter_s"].iloc[1:].astype(float).tolist()


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end and a start at the same time do not overlap)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = best = 0
    for _, step in events:          # at equal times -1 sorts first
        running += step
        best = max(best, running)
    return best


@contextmanager
def stage(took: dict[str, float], name: str):
    """Announce a part of the benchmark and add its wall time to took[name]."""
    print(f"-- {name}", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        took[name] = took.get(name, 0.0) + time.perf_counter() - t0


def start_local_ray(**kwargs) -> None:
    """An embedded Ray owned by this benchmark (never a running cluster); the caller shuts it down."""
    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; the benchmark starts its own")
    ray.init(address="local", include_dashboard=False, log_to_driver=False, **kwargs)


def _search_cfg(root: str, name: str, **kwargs) -> SearchConfig:
    return SearchConfig(results_dir=root, name=name, **kwargs)


# -- 1. Ray vs plain loop --------------------------------------------------------------------

@dataclass(frozen=True)
class EpochTimes:
    plain_epoch_s: list[list[float]]     # epoch_time_s as fit() measures it; runs before and after Ray's
    ray_epoch_s: list[float]
    plain_between_s: list[list[float]]   # between consecutive reports (epochs 2+), per run
    ray_between_s: list[float]       # includes Ray's report and the per-epoch checkpoint
    ray_search_s: float              # the whole one-trial run_search call
    ray_trial_s: float               # its trial, from the trainable's start to its last report

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


def _steady(xs: list[float]) -> list[float]:
    return xs[1:] if len(xs) > 1 else xs


def plain_loop(cfg: SearchConfig) -> tuple[list[float], list[float]]:
    """run_trial in this process, threads = cpus_per_trial: (epoch_time_s, between reports)."""
    setup = cfg
    stamps: list[float] = []
    epoch_s: list[float] = []

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        stamps.append(time.perf_counter())
        epoch_s.append(float(metrics["epoch_time_s"]))

    threads = torch.get_num_threads()
    try:
        device, _ = limit_resources(setup)
        run_trial(dict(get_space(cfg.space).default), setup, report, device=device)
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
    (df,) = trial_runs(outcome.experiment_path)
    start, end = span(df)
    return df["epoch_time_s"].astype(float).tolist(), report_intervals(df), wall, end - start


# -- 3. search efficiency --------------------------------------------------------------------

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
    t0 = time.perf_counter()
    outcome = run_search(cfg)
    wall = time.perf_counter() - t0
    exp = load_experiment(outcome.experiment_path)
    runs = trial_runs(outcome.experiment_path)
    overhead = [float(df["time_total_s"].iloc[-1] - df["epoch_time_s"].sum()) for df in runs]
    in_function = [float(df["reported_at"].iloc[-1] - df["started_at"].iloc[0] - df["epoch_time_s"].sum())
                   for df in runs if "started_at" in df and "reported_at" in df]
    curves = [df["val_acc"].astype(float).tolist() for df in runs]
    return SearchRun(method, cfg.seed, float(exp.trials["best_val_acc"].max()),
                     int(exp.trials["epochs"].sum()), len(exp.trials), wall, overhead, in_function, curves)


def halving_in_hindsight(curves: list[list[float]], grace: int, rf: float, max_epochs: int) -> tuple[float, int]:
    """Synchronous successive halving replayed on full learning curves: (best val acc, epochs).

    At each of ASHA's milestones the survivors are ranked by their val acc at that epoch and
    the top max(1, floor(n / rf)) go on; the rest stop there. Seeing every survivor at once is
    the best case for a rule that ranks by val acc at ASHA's rungs and keeps 1 in rf, so the
    gap between this and the full curves' best is what the early epochs cost such a rule.
    """
    full = [c for c in curves if len(c) >= max_epochs]
    if not full:
        return float("nan"), 0
    alive, stopped_at = list(range(len(full))), {}
    for milestone in asha_milestones(grace, rf, max_epochs):
        ranked = sorted(alive, key=lambda i: full[i][milestone - 1], reverse=True)
        alive = ranked[: max(1, int(len(ranked) // rf))]
        stopped_at.update({i: milestone for i in ranked[len(alive):]})
    ran = {i: stopped_at.get(i, max_epochs) for i in range(len(full))}
    return max(max(full[i][: e]) for i, e in ran.items()), sum(ran.values())


def rank_agreement(curves: list[list[float]], max_epochs: int) -> list[float]:
    """Rank correlation (Spearman) of val acc at epochs 1 .. max-1 with the final epoch's."""
    full = pd.DataFrame([c[:max_epochs] for c in curves if len(c) >= max_epochs])
    ranks = full.rank()
    return [float(ranks[e].corr(ranks[max_epochs - 1])) for e in range(max_epochs - 1)]


def efficiency(plan: Plan, root: str) -> list[tuple[SearchRun, SearchRun, SearchRun]]:
    """Per seed: ASHA + TPE as shipped, the same with --asha-cap, random search with the full budget."""
    runs = []
    for seed in plan.seeds:
        # One 1-CPU trial per core, as the shipped defaults run on this machine (the benchmark's
        # Ray has at least 4 logical CPUs for part 5).
        common = dict(space=plan.search_space, num_samples=plan.num_samples,
                      max_epochs=plan.max_epochs, seed=seed, data=plan.search_data, cpus_per_trial=1,
                      max_concurrent=min(os.cpu_count() or 1, plan.num_samples))
        asha = search_run(_search_cfg(root, f"asha-tpe-s{seed}", **common), "ASHA + TPE")
        capped = search_run(_search_cfg(root, f"asha-cap-tpe-s{seed}", promotion_cap=True, **common),
                            "ASHA with promotion cap + TPE")
        rand = search_run(_search_cfg(root, f"random-full-s{seed}", sampler="random",
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


# -- 4. per-trial overhead around the trial ---------------------------------------------------

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
    data = DataConfig(num_clips=40, frames=2, height=8, width=8, noise=0.2)
    cfg = _search_cfg(root, "noop", space="tiny", num_samples=plan.noop_trials, max_epochs=1,
                      max_concurrent=1, scheduler="none", cpus_per_trial=1, data=data)
    t0 = time.perf_counter()
    outcome = run_search(cfg)
    wall = time.perf_counter() - t0
    runs = trial_runs(outcome.experiment_path)
    starts = [span(df)[0] for df in runs]
    cycles = np.diff(starts).tolist() or [wall]
    epochs = [float(df["epoch_time_s"].iloc[0]) for df in runs]
    return NoopOverhead(len(runs), wall, statistics.median(cycles), statistics.median(epochs))


# -- 5. fractional GPUs ------------------------------------------------------------------------

def packing(plan: Plan, root: str) -> tuple[int, int]:
    """(most trials seen at once, trials run) with gpus_per_trial=0.25 on one (fake) GPU."""
    cfg = _search_cfg(root, "pack", space="tiny", num_samples=plan.pack_trials,
                      max_epochs=plan.pack_epochs, scheduler="none", cpus_per_trial=1,
                      gpus_per_trial=GPU_FRACTION, data=plan.tiny_data)
    outcome = run_search(cfg)
    runs = trial_runs(outcome.experiment_path)
    return max_overlap([span(df) for df in runs]), len(runs)


def packed_throughput(plan: Plan, root: str) -> dict[int, float]:
    """CUDA only: train clips per second, all trials together, for 1 trial alone and 4 packed.

    Every trial trains the same configuration (the space's seed default), so the two runs
    differ only in how many share the GPU. Wall time runs from the first trial's start to the
    last one's final report.
    """
    from ray import tune
    from ray.tune import RunConfig, TuneConfig

    data = plan.overhead_data
    space = get_space(plan.overhead_space)
    train_clips = len(make_loaders(data, batch_size=32, progress=False).train.indices)
    cores = os.cpu_count() or 1
    out = {}
    for k, gpus in ((1, 1.0), (4, GPU_FRACTION)):
        cfg = _search_cfg(root, f"cuda-{k}", space=plan.overhead_space, num_samples=k,
                          max_epochs=plan.overhead_epochs + 1, cpus_per_trial=max(1, cores // 4),
                          gpus_per_trial=gpus, data=data).resolved()
        tune.Tuner(make_trainable(cfg), param_space=dict(space.default),
                   tune_config=TuneConfig(num_samples=k),
                   run_config=RunConfig(name=cfg.name, storage_path=cfg.storage_root, verbose=0)).fit()
        runs = trial_runs(cfg.experiment_path)
        spans = [span(df) for df in runs]
        wall = max(e for _, e in spans) - min(s for s, _ in spans)
        out[k] = sum(len(df) for df in runs) * train_clips / wall
    return out


# -- report ------------------------------------------------------------------------------------

def _fmt_list(xs: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in xs) or "-"


def _pt(x: float) -> str:
    return f"{100 * x:+.1f} pt"


def render(plan: Plan, times: EpochTimes, share: DataShare, runs: list[tuple[SearchRun, SearchRun, SearchRun]],
           noop: NoopOverhead | None, pack: tuple[int, int], cuda: dict[int, float] | str,
           took: dict[str, float]) -> str:
    model_cfg, _ = trial_configs(dict(get_space(plan.overhead_space).default),
                                 SearchConfig(space=plan.overhead_space, data=plan.overhead_data), 10)
    asha, capped, rand = (list(col) for col in zip(*runs, strict=True))
    gap, epoch_ratio = versus(asha, rand)
    cap_gap, cap_ratio = versus(capped, rand)
    grace, rf = SearchConfig().grace_period, SearchConfig().reduction_factor
    hind = [halving_in_hindsight(r.curves, grace, rf, plan.max_epochs) for r in rand]
    hind_gap = statistics.mean(b for b, _ in hind) - statistics.mean(r.best_val_acc for r in rand)
    hind_ratio = sum(e for _, e in hind) / sum(r.epochs for r in rand)
    agree = np.mean([rank_agreement(r.curves, plan.max_epochs) for r in rand], axis=0).tolist()
    in_trial = [x for run in asha + capped + rand for x in run.in_trial_overhead_s]
    in_function = [x for run in asha + capped + rand for x in run.in_function_s]
    most, pack_trials = pack
    target = round(1 / GPU_FRACTION)
    if isinstance(cuda, dict):
        cuda_row = (f"| aggregate throughput, 4 packed / 1 alone (real GPU) | "
                    f"{cuda[4] / cuda[1]:.2f}x ({cuda[4]:.0f} vs {cuda[1]:.0f} clips/s) | > 1x | "
                    f"{verdict(cuda[4] > cuda[1])} |")
    else:
        cuda_row = f"| aggregate throughput, 4 packed / 1 alone (real GPU) | {cuda} | > 1x | - |"
    lines = [
        "## Search benchmarks (`scripts/bench_search.py`, issue 7)",
        "",
        *(["*Smoke run: tiny sizes, the figures only show that the script works.*", ""] if plan.smoke else []),
        f"- Run: {machine_line()}.",
        f"- Wall time: {sum(took.values()) / 60:.1f} min in all; "
        + ", ".join(f"{name} {secs:.0f} s" for name, secs in took.items()) + ".",
        "",
        "| figure | measured | goal | result |",
        "|---|---|---|---|",
        f"| 1. epoch inside Ray / plain loop | {times.ratio:.3f}x | <= {GOAL_RAY_RATIO:.2f}x | "
        f"{verdict(times.ratio <= GOAL_RAY_RATIO)} |",
        f"| 2. data-loading share of epoch time | {100 * max(share.share, share.in_loader_share):.1f} % | "
        f"<= {100 * GOAL_SHARE:.0f} % | {verdict(share.passed)} |",
        f"| 3a. best val acc, ASHA+TPE - random full budget (mean of {len(runs)} seeds) | "
        f"{_pt(gap)} | >= {_pt(-GOAL_ACC_GAP)} | {verdict(gap >= -GOAL_ACC_GAP)} |",
        f"| 3b. epochs, ASHA+TPE / random full budget | {epoch_ratio:.2f} | <= {GOAL_EPOCH_RATIO:.2f} | "
        f"{verdict(epoch_ratio <= GOAL_EPOCH_RATIO)} |",
        f"| 3a. the same with `--asha-cap` | {_pt(cap_gap)} | >= {_pt(-GOAL_ACC_GAP)} | "
        f"{verdict(cap_gap >= -GOAL_ACC_GAP)} |",
        f"| 3b. the same with `--asha-cap` | {cap_ratio:.2f} | <= {GOAL_EPOCH_RATIO:.2f} | "
        f"{verdict(cap_ratio <= GOAL_EPOCH_RATIO)} |",
        f"| 3c. successive halving replayed on random search's full curves (hindsight) | "
        f"{_pt(hind_gap)}, {hind_ratio:.2f} of the epochs | - | info |",
        f"| 3d. rank correlation, val acc at epoch {grace} vs epoch {plan.max_epochs} (random trials) | "
        f"{agree[grace - 1]:.2f} | - | info |",
        f"| 4. a one-trial search beyond its trial (part 1) | {times.around_trial_s:.2f} s | - | info |",
        *([f"| 4. per-trial overhead around a trial (no-op trials) | {noop.per_trial_s:.2f} s | - | info |"]
          if noop else []),
        f"| 4. per-trial overhead inside a trial (median) | {statistics.median(in_trial):.2f} s | - | info |",
        f"| 5. trials at once on one GPU, {GPU_FRACTION} GPU each | {most} | {target} | "
        f"{verdict(most == target)} |",
        cuda_row,
        "",
        "### 1. Epoch time: trial inside Ray vs the plain loop",
        "",
        f"One trial of the `{plan.overhead_space}` space's seed default ({describe_model(model_cfg)}) on "
        f"{describe_data(plan.overhead_data)}, {plan.overhead_epochs} epochs, {plan.cpus} CPU(s) per "
        "trial = torch threads in both. Ray: a real one-trial `run_search` (report and checkpoint "
        "every epoch). Plain: `run_trial` in the driver process, a no-op report callback, run "
        "twice: before Ray starts and after it has shut down at the end of the benchmark.",
        "",
        "| | plain loop, before / after | inside Ray | ratio |",
        "|---|---|---|---|",
        f"| epoch_time_s per epoch | {' / '.join(_fmt_list(run) for run in times.plain_epoch_s)} | "
        f"{_fmt_list(times.ray_epoch_s)} | "
        f"{times.epoch_ratio:.3f}x (epochs 2+); epoch 1: {times.first_epoch_ratio:.3f}x |",
        f"| seconds between reports (epochs 2+) | {' / '.join(_fmt_list(run) for run in times.plain_between_s)} | "
        f"{_fmt_list(times.ray_between_s)} | "
        + (f"{times.between_ratio:.3f}x |" if times.between_ratio is not None else "- |"),
        "",
        "The figure judged is the larger of the two ratios, each a median over epochs 2+: the Ray "
        "trial's first epoch overlaps Tune's own start-up (its driver, the trial actor's siblings), "
        "which part 4 counts as per-search overhead.",
        "",
        "### 2. Data-loading share of epoch time",
        "",
        f"`scripts/bench_data.py`'s measurement on the same data and model, {share.threads} torch "
        f"threads, {share.train_clips} train / {share.val_clips} val clips, batch {share.batch_size}, "
        f"median of {share.repeats} repeat(s). The figure judged is the larger of the two shares.",
        "",
        "| measure | value |",
        "|---|---|",
        *data_share_rows(share),
        "",
        "### 3. Search efficiency: ASHA + TPE vs random search with the full budget",
        "",
        f"Reduced synthetic config (for time): {describe_data(plan.search_data)}; space "
        f"`{plan.search_space}`; {plan.num_samples} trials per search, 1 CPU each, up to "
        f"{plan.max_epochs} epochs, {min(os.cpu_count() or 1, plan.num_samples)} trials at once. ASHA: grace period {SearchConfig().grace_period}, reduction factor "
        f"{SearchConfig().reduction_factor:g}. Random: Optuna RandomSampler, no early stopping. Both "
        "start from the space's seed default. Best val acc: the highest any trial reported at any epoch.",
        "",
        "`--asha-cap`: the same ASHA, but a rung lets at most max(1, floor(n / reduction factor)) of "
        "the n trials recorded at it through, whatever order they arrive in.",
        "",
        "| seed | ASHA+TPE best | capped best | random best | ASHA+TPE epochs | capped epochs | "
        "random epochs | ASHA+TPE wall | capped wall | random wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {a.seed} | {a.best_val_acc:.4f} | {c.best_val_acc:.4f} | {r.best_val_acc:.4f} | "
          f"{a.epochs} | {c.epochs} | {r.epochs} | {a.wall_s:.0f} s | {c.wall_s:.0f} s | {r.wall_s:.0f} s |"
          for a, c, r in runs],
        "| mean | " + " | ".join(f"{statistics.mean(x.best_val_acc for x in col):.4f}" for col in (asha, capped, rand))
        + " | " + " | ".join(f"{statistics.mean(x.epochs for x in col):.1f}" for col in (asha, capped, rand))
        + " | | | |",
        f"| vs random | {_pt(gap)} | {_pt(cap_gap)} | | {epoch_ratio:.2f} | {cap_ratio:.2f} | | | | |",
        "",
        "How much the early epochs tell on this benchmark, from the random searches' full curves "
        f"({sum(len(r.curves) for r in rand)} trials, every one trained {plan.max_epochs} epochs): "
        "the rank correlation (Spearman) of val acc at each epoch with the last one's, and "
        f"synchronous successive halving at ASHA's rungs (epochs {asha_milestones(grace, rf, plan.max_epochs)}, "
        f"the top max(1, floor(n / {rf:g})) go on) replayed on those curves. It sees every survivor "
        "of a rung at once: the best that a rule ranking by val acc at these rungs and keeping 1 in "
        "rf can do with these configs.",
        "",
        "| epoch | " + " | ".join(str(e + 1) for e in range(len(agree))) + " |",
        "|---" * (len(agree) + 1) + "|",
        "| rank correlation with epoch " + f"{plan.max_epochs} | " + " | ".join(f"{a:.2f}" for a in agree) + " |",
        "",
        "| seed | random best | halving in hindsight, best | its epochs |",
        "|---|---|---|---|",
        *[f"| {r.seed} | {r.best_val_acc:.4f} | {b:.4f} | {e} |" for r, (b, e) in zip(rand, hind, strict=True)],
        f"| vs random | | {_pt(hind_gap)} | {hind_ratio:.2f} |",
        "",
        "### 4. Per-trial overhead",
        "",
        f"- A one-trial search (part 1's) took {times.ray_search_s:.1f} s, its trial "
        f"{times.ray_trial_s:.1f} s from the trainable's start to its last report: "
        f"{times.around_trial_s:.1f} s of Tune start-up, actor start and teardown.",
        *([f"- Around a trial: a sequential search (max_concurrent 1) of {noop.trials} one-epoch trials of "
           f"the `tiny` space on 40 clips of 2x8x8: median start-to-start interval {noop.cycle_s:.2f} s, "
           f"of which the epoch {noop.epoch_s:.3f} s, so {noop.per_trial_s:.2f} s per trial go to Ray "
           f"(actor start, setup, report, checkpoint, scheduling); the whole search took {noop.wall_s:.1f} s."]
          if noop else []),
        f"- Inside a trial (the searches of part 3, {len(in_trial)} trials): Ray's time_total_s minus the "
        f"trial's epochs: median {statistics.median(in_trial):.2f} s, max {max(in_trial):.2f} s"
        + (f"; of which inside the trial function (data and model set-up, reports, checkpoints) "
           f"median {statistics.median(in_function):.2f} s, the rest before it started "
           "(Ray's trainable set-up)." if in_function else "."),
        "",
        "### 5. Fractional GPUs",
        "",
        f"`ray.init(address=\"local\", num_cpus={max(4, os.cpu_count() or 1)}, num_gpus=1)` "
        f"({'the real GPU' if torch.cuda.is_available() else 'a fake GPU: this machine has none'}), "
        f"{pack_trials} trials of the `tiny` space on {describe_data(plan.tiny_data)}, "
        f"{plan.pack_epochs} epochs each, gpus_per_trial {GPU_FRACTION}, 1 CPU each: at most "
        f"**{most}** trials were running at the same moment (from each trial's start and last-report "
        f"times); {target} fit.",
        "",
        "### 6. Packed trials on a real GPU",
        "",
        (f"Same configuration (the seed default, {describe_data(plan.overhead_data)}) as 1 trial "
         f"alone (1 GPU) and as 4 trials at {GPU_FRACTION} GPU each, {plan.overhead_epochs + 1} epochs: "
         f"{cuda[1]:.0f} vs {cuda[4]:.0f} train clips/s in all, {cuda[4] / cuda[1]:.2f}x."
         if isinstance(cuda, dict) else f"{cuda}."),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, under a minute")
    p.add_argument("--seeds", type=int, default=None, help="part 3: seeds 0..N-1 (default 3; smoke 1)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="part 3: trials per search (default 12; smoke 2)")
    p.add_argument("--cpus-per-trial", type=int, default=None,
                   help="parts 1-2: CPUs of the one trial = torch threads (default 1, as `vidtune search`; smoke 1)")
    p.add_argument("--data-repeats", type=int, default=None, help="part 2: timed repeats (default 3)")
    p.add_argument("--results-dir", default=None,
                   help="keep the Ray experiments here (default: a temporary folder, removed)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file to update (default docs/benchmarks.md)")
    args = p.parse_args(argv)
    plan = make_plan(args)
    if plan.seeds == () or plan.num_samples < 1:
        p.error("--seeds and --num-samples must be >= 1")
    took: dict[str, float] = {}
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="vidtune-bench-") as tmp:
        root = str(Path(args.results_dir).expanduser().resolve()) if args.results_dir else tmp
        with stage(took, "data caches"):   # built up front, outside every timing
            for data in {plan.overhead_data, plan.search_data, plan.tiny_data}:
                load_arrays(data, progress=True)
        one = _search_cfg(root, "overhead", space=plan.overhead_space, num_samples=1,
                          max_epochs=plan.overhead_epochs, scheduler="none", cpus_per_trial=plan.cpus,
                          gpus_per_trial=1.0 if cuda else 0.0, data=plan.overhead_data)

        with stage(took, "part 2"):
            model_cfg, _ = trial_configs(dict(get_space(plan.overhead_space).default), one, 10)
            threads = torch.get_num_threads()
            share = measure_data_share(plan.overhead_data, model_cfg, one.batch_size,
                                       plan.data_repeats, threads=plan.cpus)
            torch.set_num_threads(threads)
        with stage(took, "part 1"):
            plain_before = plain_loop(one)

        # One embedded Ray for all parts (starting one costs seconds): at least 4 logical CPUs
        # and one GPU, a fake one where there is none, for part 5. Parts 1 and 3 limit their own
        # concurrency, so the extra logical CPUs never oversubscribe the cores.
        cuda_result: dict[int, float] | str = "skipped: no CUDA device on this machine"
        with stage(took, "Ray start"):
            start_local_ray(num_cpus=max(4, os.cpu_count() or 1), num_gpus=1)
        try:
            with stage(took, "part 1"):
                ray_epoch, ray_between, ray_search_s, ray_trial_s = ray_trial(one)
            with stage(took, "part 3"):
                runs = efficiency(plan, root)
            with stage(took, "part 4"):
                noop = noop_overhead(plan, root)
            with stage(took, "part 5"):
                pack = packing(plan, root)
            if cuda:
                with stage(took, "part 6"):
                    try:
                        cuda_result = packed_throughput(plan, root)
                    except Exception as exc:  # an optional extra: report it rather than lose the run
                        cuda_result = f"failed: {type(exc).__name__}: {exc}"
        finally:
            ray.shutdown()
        with stage(took, "part 1"):   # the plain loop again, without Ray: drift shows as a spread
            plain_after = plain_loop(one)
        times = EpochTimes([plain_before[0], plain_after[0]], ray_epoch, [plain_before[1], plain_after[1]],
                           ray_between, ray_search_s, ray_trial_s)
    body = render(plan, times, share, runs, noop, pack, cuda_result, took)
    write_section(args.out, KEY, body)
    print(body)
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return body


if __name__ == "__main__":
    main()
