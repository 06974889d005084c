"""Warm-start benchmark: does a search warm-started from another seed's finished search reach
the cold search's best validation accuracy in fewer epochs?

For every seed s of the plan, two searches on the same reduced synthetic benchmark, as
shipped (TPE + ASHA, the space's first trial first):
- cold: seed s, nothing before it;
- warm: seed s, warm-started (--warm-start) from the cold search of the previous seed in the
  plan (the first seed takes the last one's), a finished search with another seed.

Epochs to reach a value: the search's reports in the order they were made (reported_at),
counting every epoch any trial trained, up to the first report of at least that value. The
cold search reaches its own best by definition; the question is whether the warm one
reaches it sooner. The earlier search's epochs are not counted: they were spent already.

Ray is reached only through vidtune.trainable.tune.driver.run_search.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from vidtune.data import DataConfig
from vidtune.trainable.core.search_config import SearchConfig


@dataclass(frozen=True)
class Plan:
    data: DataConfig
    space: str
    num_samples: int
    max_epochs: int
    seeds: tuple[int, ...]
    # One trial at a time: the searches are then deterministic on CPU (seeded TPE, seeded
    # trials, ASHA's decisions in one order), so the epoch counts repeat exactly. With two at
    # once, the order of reports follows the machine's load.
    max_concurrent: int = 1
    grace_period: int = 1
    reduction_factor: float = 3.0
    uses: tuple[str, ...] = ("all",)   # --warm-start-use values, one warm search per seed each
    benchmark: str = "reduced"   # smoke, reduced or default (make search's): names the section


def make_plan(smoke: bool, seeds: int | None = None, num_samples: int | None = None,
              max_concurrent: int | None = None, uses: tuple[str, ...] | None = None,
              benchmark: str = "reduced") -> Plan:
    if smoke:
        plan = Plan(DataConfig(num_clips=100, frames=4, height=16, width=16, noise=0.2),
                    "tiny", num_samples=3, max_epochs=2, seeds=(0, 1), benchmark="smoke")
    elif benchmark == "default":
        # `make search`'s and the race's benchmark: 1000 clips of 8x32x32, 200 of them val.
        plan = Plan(DataConfig(), "default", num_samples=16, max_epochs=6, seeds=(0, 1, 2, 3),
                    benchmark="default")
    else:
        # bench_search's reduced config: 500 clips of 6x16x16, 150 of them val.
        plan = Plan(DataConfig(num_clips=500, frames=6, height=16, width=16, val_fraction=0.3),
                    "default", num_samples=16, max_epochs=6, seeds=(0, 1, 2, 3))
    return replace(plan, num_samples=num_samples or plan.num_samples,
                   seeds=tuple(range(seeds)) if seeds else plan.seeds,
                   max_concurrent=max_concurrent or plan.max_concurrent, uses=uses or plan.uses)


def cold_name(seed: int) -> str:
    """The folder of a seed's cold search, under the run's root (and --cold-from)."""
    return f"cold-s{seed}"


@dataclass(frozen=True)
class Run:
    """One search: its val_acc reports in the order they were made."""

    path: str
    seed: int
    reports: list[float] = field(default_factory=list)   # val_acc, report order
    wall_s: float = 0.0

    @property
    def best(self) -> float:
        return max(self.reports)

    @property
    def epochs(self) -> int:
        return len(self.reports)

    def epochs_to(self, target: float) -> int | None:
        """Epochs trained (all trials) until the first report >= target; None if never."""
        for i, value in enumerate(self.reports, 1):
            if value >= target - 1e-12:
                return i
        return None


def reports_in_order(experiment: str | Path) -> list[float]:
    """Every trial's per-epoch val_acc (progress.csv), ordered by when it was reported."""
    frames = []
    for csv in Path(experiment).glob("trial_*/progress.csv"):
        if csv.stat().st_size:
            df = pd.read_csv(csv)
            frames.append(df[["reported_at", "val_acc"]])
    rows = pd.concat(frames).sort_values("reported_at", kind="stable")
    return [float(v) for v in rows["val_acc"]]


def run_one(plan: Plan, root: str, name: str, seed: int, warm: tuple[str, ...] = (),
            use: str = "all") -> Run:
    from vidtune.trainable.tune.driver import run_search

    cfg = SearchConfig(space=plan.space, num_samples=plan.num_samples, max_epochs=plan.max_epochs,
                       grace_period=plan.grace_period, reduction_factor=plan.reduction_factor,
                       seed=seed, cpus_per_trial=1, max_concurrent=plan.max_concurrent,
                       # One thread per trial throughout: thread sharing would hand a lone
                       # trial the idle core when it notices it, which changes its numbers.
                       cpu_sharing="none",
                       # ASHA's quantile alone: the cost-aware rule compares seconds per epoch,
                       # which follow the machine's load, and would make the counts vary.
                       asha_cost_factor=0.0,
                       results_dir=root, name=name, data=plan.data, warm_start=warm,
                       warm_start_use=use)
    t0 = time.perf_counter()
    outcome = run_search(cfg)
    return Run(outcome.experiment_path, seed, reports_in_order(outcome.experiment_path),
               time.perf_counter() - t0)


@dataclass(frozen=True)
class Pair:
    seed: int
    from_seed: int
    cold: Run
    warm: Run
    use: str = "all"   # --warm-start-use of the warm search

    @property
    def cold_epochs(self) -> int:
        found = self.cold.epochs_to(self.cold.best)
        assert found is not None
        return found

    @property
    def warm_epochs(self) -> int | None:
        return self.warm.epochs_to(self.cold.best)


def run_warm_start_bench(plan: Plan, root: str, jobs: int = 1, cold_from: str | None = None) -> list[Pair]:
    """The cold searches, then the warm ones. With jobs > 1, that many searches run at once,
    each in a fresh process with its own embedded Ray: each search still runs one trial at a
    time, so its epoch counts are the same as alone (its wall time is not).

    cold_from: a folder kept (--keep) by an earlier run of the same plan, whose cold searches
    cold-s<seed> are used instead of running them again. A cold search does not depend on the
    warm-start code, and runs exactly the same again, so only the warm searches are new. Its
    wall time is not known then (NaN)."""
    if cold_from:
        folders = [Path(cold_from) / cold_name(seed) for seed in plan.seeds]
        cold_runs = [Run(str(f), seed, reports_in_order(f), float("nan"))
                     for f, seed in zip(folders, plan.seeds, strict=True)]
    else:
        cold_runs = _run_all(jobs, [(plan, root, cold_name(seed), seed) for seed in plan.seeds])
    cold = dict(zip(plan.seeds, cold_runs, strict=True))
    for seed, run in cold.items():
        print(f"cold seed {seed}: best {run.best:.4f} in {run.epochs} epochs", file=sys.stderr)
    todo = []
    for i, seed in enumerate(plan.seeds):
        source = plan.seeds[i - 1]
        for use in plan.uses:
            name = f"warm-s{seed}-from-s{source}" if use == "all" else f"warm-{use}-s{seed}-from-s{source}"
            todo.append((seed, source, use, (plan, root, name, seed, (cold[source].path,), use)))
    warm_runs = _run_all(jobs, [args for *_, args in todo])
    pairs = []
    for (seed, source, use, _), warm in zip(todo, warm_runs, strict=True):
        pair = Pair(seed, source, cold[seed], warm, use)
        pairs.append(pair)
        print(f"warm ({use}) seed {seed} (from seed {source}): reaches {cold[seed].best:.4f} "
              f"after {pair.warm_epochs} epochs, cold after {pair.cold_epochs}", file=sys.stderr)
    return pairs


def _run_all(jobs: int, calls: list[tuple]) -> list[Run]:
    """run_one over calls, in order, or in `jobs` fresh processes at once."""
    if jobs <= 1:
        return [run_one(*call) for call in calls]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        return list(pool.map(_run_one_star, calls))


def _run_one_star(call: tuple) -> Run:
    return run_one(*call)


def _seconds(wall_s: float) -> str:
    return "reused" if math.isnan(wall_s) else f"{wall_s:.0f} s"   # NaN: an earlier run's search


def render(plan: Plan, pairs: list[Pair], machine: str, wall_s: float, jobs: int = 1) -> str:
    d = plan.data
    title = "### Warm start: epochs to reach the cold search's best"
    if plan.benchmark == "default":
        title += " (`make search`'s benchmark)"
    lines = [
        title,
        "",
        f"Machine: {machine}. Whole run: {wall_s / 60:.1f} min.",
        "",
        f"Synthetic, {d.num_clips} clips of {d.frames}x{d.height}x{d.width} (T x H x W), noise "
        f"{d.noise}, val fraction {d.val_fraction}; space `{plan.space}`; {plan.num_samples} "
        f"trials per search, up to {plan.max_epochs} epochs, 1 CPU each, "
        f"{'one trial at a time' if plan.max_concurrent == 1 else f'{plan.max_concurrent} at once'}"
        f"{f' ({jobs} searches at once, so the wall times share the cores)' if jobs > 1 else ''}; "
        f"TPE + ASHA (grace period {plan.grace_period}, reduction factor "
        f"{plan.reduction_factor:g}). Warm: the same search warm-started from the finished cold "
        "search of another seed. Epochs: every epoch any trial trained, in report order, up to "
        "the first report of at least the cold search's best val acc (the earlier search's "
        "epochs not counted). `--warm-start-use`: what TPE took from the earlier search "
        "(all: every finished trial; full: the trials that trained every epoch; explore: all, "
        "with TPE's random start-up trials as in a cold search)."
        + (" The cold searches are an earlier run's (`--cold-from`): a cold search repeats to "
           "the epoch, and the warm-start code does not touch it." if any(
               math.isnan(p.cold.wall_s) for p in pairs) else ""),
        "",
        "| seed | warm from seed | `--warm-start-use` | cold best | cold: epochs to its best | "
        "warm: epochs to the cold best | warm best | cold epochs | warm epochs | cold wall | "
        "warm wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        warm = "not reached" if p.warm_epochs is None else str(p.warm_epochs)
        lines.append(f"| {p.seed} | {p.from_seed} | {p.use} | {p.cold.best:.4f} | {p.cold_epochs} | "
                     f"{warm} | {p.warm.best:.4f} | {p.cold.epochs} | {p.warm.epochs} | "
                     f"{_seconds(p.cold.wall_s)} | {_seconds(p.warm.wall_s)} |")
    lines.append("")
    for use in plan.uses:
        mine = [p for p in pairs if p.use == use]
        reached = [p for p in mine if p.warm_epochs is not None]
        fewer = sum(p.warm_epochs is not None and p.warm_epochs < p.cold_epochs for p in mine)
        line = (f"- `{use}`: warm reached the cold best in fewer epochs for {fewer} of {len(mine)} "
                f"seeds (reached it at all: {len(reached)}); mean warm best "
                f"{statistics.mean(p.warm.best for p in mine):.4f} against the cold "
                f"{statistics.mean(p.cold.best for p in mine):.4f}")
        if reached:
            ratio = statistics.mean(p.warm_epochs / p.cold_epochs for p in reached)   # type: ignore[operator]
            line += f"; epochs to the cold best, warm / cold, where reached: {ratio:.2f}"
        lines.append(line + ".")
    return "\n".join(lines) + "\n"
