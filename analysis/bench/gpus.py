"""Search benchmark parts 5 and 6: fractional GPUs.

5. Trials of gpus_per_trial=0.25 on one GPU (a fake one on a CPU machine): the most trials
   running at once, from their start and last-report times. Goal: 4.
6. On a CUDA machine only: the aggregate throughput of 4 packed trials against 1 alone.
"""

from __future__ import annotations

import os

from vidtune.analysis.bench.curves import max_overlap
from vidtune.analysis.bench.plan import Plan, search_cfg
from vidtune.analysis.bench.reports import per_trial, span
from vidtune.data import make_loaders
from vidtune.search_spaces import get_space
from vidtune.trainable.tune.driver import run_repeats, run_search
from vidtune.trainable.tune.experiment import load_experiment

GPU_FRACTION = 0.25          # part 5: four trials per (fake) GPU


def packing(plan: Plan, root: str) -> tuple[int, int]:
    """(most trials seen at once, trials run) with gpus_per_trial=0.25 on one (fake) GPU."""
    cfg = search_cfg(root, "pack", space="tiny", num_samples=plan.pack_trials,
                     max_epochs=plan.pack_epochs, scheduler="none", cpus_per_trial=1,
                     gpus_per_trial=GPU_FRACTION, data=plan.tiny_data)
    outcome = run_search(cfg)
    runs = per_trial(load_experiment(outcome.experiment_path))
    return max_overlap([span(df) for df in runs]), len(runs)


def packed_throughput(plan: Plan, root: str) -> dict[int, float]:
    """CUDA only: train clips per second, all trials together, for 1 trial alone and 4 packed.

    Every trial trains the same configuration (the space's seed default), so the two runs
    differ only in how many share the GPU. Wall time runs from the first trial's start to the
    last one's final report.
    """
    data = plan.overhead_data
    params = dict(get_space(plan.overhead_space).default)
    train_clips = len(make_loaders(data, batch_size=32, progress=False).train.indices)
    cores = os.cpu_count() or 1
    out = {}
    for k, gpus in ((1, 1.0), (4, GPU_FRACTION)):
        cfg = search_cfg(root, f"cuda-{k}", space=plan.overhead_space, num_samples=k,
                         max_epochs=plan.overhead_epochs + 1, cpus_per_trial=max(1, cores // 4),
                         gpus_per_trial=gpus, data=data)
        runs = per_trial(load_experiment(run_repeats(cfg, params).experiment_path))
        spans = [span(df) for df in runs]
        wall = max(e for _, e in spans) - min(s for s, _ in spans)
        out[k] = sum(len(df) for df in runs) * train_clips / wall
    return out
