"""The bench_search section of the markdown file: the summary table, then one part each.

The result column says PASS or FAIL only where the measurement can decide: a goal whose
figure is within this machine's own run-to-run noise reads "not resolvable", with the noise
beside it (part 1), and an estimate that is noise is named as such (part 2).
"""

from __future__ import annotations

import os
import statistics

import numpy as np
import torch

from benchmarks.lib.common import (
    SMOKE_NOTE,
    describe_data,
    describe_model,
    fmt_list,
    fmt_pt,
    machine_line,
    verdict,
)
from benchmarks.lib.curves import halving_in_hindsight, rank_agreement
from benchmarks.lib.data_share import GOAL_SHARE, DataShare, data_share_rows
from benchmarks.lib.efficiency import GOAL_ACC_GAP, GOAL_EPOCH_RATIO, SearchRun, versus
from benchmarks.lib.epoch_time import GOAL_RAY_RATIO, EpochTimes
from benchmarks.lib.gpus import GPU_FRACTION
from benchmarks.lib.overhead import NoopOverhead
from benchmarks.lib.plan import Plan
from vidtune.analysis.tables import asha_milestones
from vidtune.search_spaces import get_space
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import trial_configs

KEY = "bench_search"          # its section of the markdown file


def render(plan: Plan, times: EpochTimes, share: DataShare, runs: list[tuple[SearchRun, SearchRun, SearchRun]],
           noop: NoopOverhead | None, pack: tuple[int, int], took: dict[str, float]) -> str:
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
    lines = [
        "## Search benchmarks (`benchmarks/bench_search.py`)",
        "",
        *([SMOKE_NOTE, ""] if plan.smoke else []),
        f"- Run: {machine_line()}.",
        f"- Wall time: {sum(took.values()) / 60:.1f} min in all; "
        + ", ".join(f"{name} {secs:.0f} s" for name, secs in took.items()) + ".",
        "",
        "| figure | measured | goal | result |",
        "|---|---|---|---|",
        f"| 1. epoch inside Ray / plain loop | {times.ratio:.3f}x | <= {GOAL_RAY_RATIO:.2f}x | "
        f"{times.verdict} |",
        f"| 2. data-loading share of epoch time | {100 * share.judged_share:.1f} % | "
        f"<= {100 * GOAL_SHARE:.0f} % | {share.verdict} |",
        f"| 3a. best val acc, ASHA+TPE - random full budget (mean of {len(runs)} seeds) | "
        f"{fmt_pt(gap)} | >= {fmt_pt(-GOAL_ACC_GAP)} | {verdict(gap >= -GOAL_ACC_GAP)} |",
        f"| 3b. epochs, ASHA+TPE / random full budget | {epoch_ratio:.2f} | <= {GOAL_EPOCH_RATIO:.2f} | "
        f"{verdict(epoch_ratio <= GOAL_EPOCH_RATIO)} |",
        f"| 3a. the same with `--asha-cap` | {fmt_pt(cap_gap)} | >= {fmt_pt(-GOAL_ACC_GAP)} | "
        f"{verdict(cap_gap >= -GOAL_ACC_GAP)} |",
        f"| 3b. the same with `--asha-cap` | {cap_ratio:.2f} | <= {GOAL_EPOCH_RATIO:.2f} | "
        f"{verdict(cap_ratio <= GOAL_EPOCH_RATIO)} |",
        f"| 3c. successive halving replayed on random search's full curves (hindsight) | "
        f"{fmt_pt(hind_gap)}, {hind_ratio:.2f} of the epochs | - | info |",
        f"| 3d. rank correlation, val acc at epoch {grace} vs epoch {plan.max_epochs} (random trials) | "
        f"{agree[grace - 1]:.2f} | - | info |",
        f"| 4. a one-trial search beyond its trial (part 1) | {times.around_trial_s:.2f} s | - | info |",
        *([f"| 4. per-trial overhead around a trial (no-op trials) | {noop.per_trial_s:.2f} s | - | info |"]
          if noop else []),
        f"| 4. per-trial overhead inside a trial (median) | {statistics.median(in_trial):.2f} s | - | info |",
        f"| 5. trials at once on one GPU, {GPU_FRACTION} GPU each | {most} | {target} | "
        f"{verdict(most == target)} |",
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
        f"| epoch_time_s per epoch | {' / '.join(fmt_list(run) for run in times.plain_epoch_s)} | "
        f"{fmt_list(times.ray_epoch_s)} | "
        f"{times.epoch_ratio:.3f}x (epochs 2+); epoch 1: {times.first_epoch_ratio:.3f}x |",
        f"| seconds between reports (epochs 2+) | {' / '.join(fmt_list(run) for run in times.plain_between_s)} | "
        f"{fmt_list(times.ray_between_s)} | "
        + (f"{times.between_ratio:.3f}x |" if times.between_ratio is not None else "- |"),
        "",
        "The figure judged is the larger of the two ratios, each a median over epochs 2+: the Ray "
        "trial's first epoch overlaps Tune's own start-up (its driver, the trial actor's siblings), "
        "which part 4 counts as per-search overhead. It is judged only where the machine holds "
        f"still: the plain loop's own epochs 2+ (both runs) vary by {100 * times.noise:.1f} % "
        "((max - min) / median); above the "
        f"{100 * (GOAL_RAY_RATIO - 1):.0f} % the goal has to resolve, the result is "
        "\"not resolvable\" whichever side of the goal the ratio falls.",
        "",
        "### 2. Data-loading share of epoch time",
        "",
        f"`benchmarks/bench_data.py`'s measurement on the same data and model, {share.threads} torch "
        f"threads, {share.train_clips} train / {share.val_clips} val clips, batch {share.batch_size}, "
        f"median of {share.repeats} repeat(s). The figure judged is the larger of the two shares, "
        "or the inside-loader share alone where the difference lies within the run-to-run spread "
        "(then it cannot tell a loading cost from the machine's drift).",
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
        f"| vs random | {fmt_pt(gap)} | {fmt_pt(cap_gap)} | | {epoch_ratio:.2f} | {cap_ratio:.2f} | | | | |",
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
        f"| vs random | | {fmt_pt(hind_gap)} | {hind_ratio:.2f} |",
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
        "Measured by `make gpu-check` (`benchmarks/gpu_check.py`) on a CUDA machine, in its own "
        "section of this file (`gpu_check`): 1, 2, 4 and 8 packed trials per GPU on 16x112x112 "
        "clips, with GPU utilization, peak memory per trial and the data path's share.",
    ]
    return "\n".join(lines)

