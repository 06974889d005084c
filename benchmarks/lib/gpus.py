"""Fractional GPUs: the search benchmark's part 5, and the packed searches of `make gpu-check`.

5. Trials of gpus_per_trial=0.25 on one GPU (a fake one on a CPU machine): the most trials
   running at once, from their start and last-report times. Goal: 4.
6. On a CUDA machine (gpu_check.py, through packed.py: plain processes, no Ray): k trials per GPU, every one training the same
   configuration, so that k is the only thing that changes; per k the aggregate training
   throughput, GPU utilization, peak memory per trial and the data wait's share of an epoch.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import pandas as pd

from benchmarks.lib.curves import max_overlap
from benchmarks.lib.gpu_util import mean_between
from benchmarks.lib.plan import Plan, search_cfg
from benchmarks.lib.trial_reports import per_trial, span
from vidtune.trainable.tune.experiment import load_experiment

GPU_FRACTION = 0.25          # part 5: four trials per (fake) GPU


def packing(plan: Plan, root: str) -> tuple[int, int]:
    """(most trials seen at once, trials run) with gpus_per_trial=0.25 on one (fake) GPU."""
    from vidtune.trainable.tune.driver import run_search  # Ray: only where a search runs

    cfg = search_cfg(root, "pack", space="tiny", num_samples=plan.pack_trials,
                     max_epochs=plan.pack_epochs, scheduler="none", cpus_per_trial=1,
                     gpus_per_trial=GPU_FRACTION, data=plan.tiny_data)
    outcome = run_search(cfg)
    runs = per_trial(load_experiment(outcome.experiment_path))
    return max_overlap([span(df) for df in runs]), len(runs)


@dataclass(frozen=True)
class PackedRun:
    """k trials of one configuration packed on one GPU. Steady epochs are epochs 2+ (the
    first pays for cuDNN's kernel choice, the allocator's growth and the trial's start)."""

    per_gpu: int                  # k
    share: float                  # gpus_per_trial
    trials: int                   # trials that reported an epoch
    errors: int
    clips_per_s: float            # training clips per second, all trials together
    alone_clips_per_s: list[float]   # each trial's own rate
    util: float | None            # mean GPU utilization %, while every trial was in a steady epoch
    util_samples: int
    util_source: str
    peak_mb: list[float]          # each trial's peak CUDA memory (torch.cuda.max_memory_allocated)
    cap_mb: float                 # each trial's memory cap (0: none, a whole GPU)
    data_share: float             # median over steady epochs of data_s / epoch_time_s
    overlap: int                  # most trials running at the same moment
    wall_s: float                 # the search, from its start to its end
    # Filled by the Ray-free packed runs (packed.run_packed):
    reserved_mb: list[float] = field(default_factory=list)   # each trial's peak torch reserve (what the cap limits)
    card_peak_mb: float | None = None   # the most memory in use on the whole card (NVML), contexts included
    start_up_s: float = 0.0       # launch to the last trial's first batch
    stopped: int = 0              # trials stopped at the time budget
    device: str = ""              # what the trials trained on (cuda:0, or cpu in --cpu mode)


def packed_figures(k: int, share: float, runs: list[pd.DataFrame], train_clips: int,
                   samples: list[tuple[float, float]], util_source: str, errors: int,
                   trials: pd.DataFrame, wall_s: float) -> PackedRun:
    """The figures of one packed search from its trials' reports (pure: tested on hand-made ones).

    Aggregate throughput: each trial's train clips per second of its steady epochs (an epoch
    is its train pass and its val pass, as the trial runs them), summed over the trials; valid
    as a packed figure because the trials ran at the same time (overlap says how many did).
    Utilization: the samples taken while every trial was past its first epoch.
    """
    steady = [df[df["epoch"] >= 2] for df in runs]
    rates = [train_clips / float(df["epoch_time_s"].median()) for df in steady if len(df)]
    ends_of_first = [float(df.loc[df["epoch"] == 1, "reported_at"].min()) for df in runs]
    t0 = max(ends_of_first) if ends_of_first else 0.0
    t1 = min((float(df["reported_at"].iloc[-1]) for df in runs), default=0.0)
    if t1 <= t0 and runs:   # no moment with every trial in a steady epoch: the whole search
        t0, t1 = min(span(df)[0] for df in runs), max(span(df)[1] for df in runs)
    util, n = mean_between(samples, t0, t1)
    shares = [float(x) for df in steady for x in (df["data_s"] / df["epoch_time_s"]).dropna()]
    peaks = pd.to_numeric(trials.get("gpu_peak_mb", pd.Series(dtype=float)), errors="coerce")
    caps = pd.to_numeric(trials.get("gpu_cap_mb", pd.Series(dtype=float)), errors="coerce")
    return PackedRun(
        per_gpu=k, share=share, trials=len(runs), errors=errors, clips_per_s=sum(rates),
        alone_clips_per_s=rates, util=util, util_samples=n, util_source=util_source,
        peak_mb=[float(x) for x in peaks.dropna()], cap_mb=float(caps.max()) if caps.notna().any() else 0.0,
        data_share=statistics.median(shares) if shares else float("nan"),
        overlap=max_overlap([span(df) for df in runs]) if runs else 0, wall_s=wall_s)
