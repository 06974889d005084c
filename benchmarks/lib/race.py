"""The race: wall time to a good model, vidtune against the tools users would pick.

Four methods, the same model, data, space, trial count and epoch budget, interleaved per seed
(the order rotates from seed to seed, so the machine's drift falls on every method):

- vidtune:   `vidtune search` as shipped (run_search with SearchConfig's defaults).
- ray-tune:  stock Ray Tune as its docs teach it (trainable/tune/stock.py).
- optuna:    Optuna alone: TPE and its SuccessiveHalvingPruner, one worker process per core
             on one shared JournalStorage file, each worker a share of the trials.
- random:    vidtune's engine with random proposals and no early stopping (the full budget).

A method may also be a variant of vidtune, `vidtune:field=value,...` over SearchConfig's
fields (e.g. `vidtune:cpu_sharing=restart`): the figures that chose vidtune's defaults.

At equal wall time (`budget_s` > 0) every method gets the same seconds from its
start, Ray's start included, and as many trials as fit: vidtune and random search with
`--time-budget`, stock Ray Tune with TuneConfig's `time_budget_s`, Optuna alone with
`optimize(timeout=...)`, its workers ended at the budget (Optuna's timeout only stops new
trials). Reports after the budget do not count (benchmarks/lib/race_budget.py).

Every method's clock starts before it starts anything (Ray included) and each report is
stamped with the wall clock. Per seed, the target is the best val acc any method reached,
minus 1 point; a method's time to target is the first moment its best-so-far reaches it
(never: infinite). Also recorded: epochs trained, core utilization (the machine's busy CPU
time over wall x cores, from /proc/stat), and vidtune's results folder size.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidtune.data import DataConfig, load_arrays
from vidtune.trainable.core.search_config import SearchConfig

METHODS = ("vidtune", "ray-tune", "optuna", "random")
RUNS_FILE = "race_runs.json"
TARGET_GAP = 0.01            # time to target: within 1 point of the best any method reached
GOAL_TTT_RATIO = 0.5         # vidtune's median time to target <= 0.5 x the best peer's
GOAL_ACC_GAP = 0.01          # vidtune's mean best val acc never more than 1 point below a peer's
GOAL_CPU = 0.90              # cores busy over vidtune's search
GOAL_STORAGE_MB = 60.0       # vidtune's results folder after the default search


@dataclass(frozen=True)
class RacePlan:
    smoke: bool
    data: DataConfig
    space: str
    num_samples: int
    max_epochs: int
    seeds: tuple[int, ...]
    methods: tuple[str, ...] = METHODS
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)   # Optuna's processes
    budget_s: float = 0.0    # > 0: the race at equal wall time, as many trials as fit

    def __post_init__(self) -> None:
        if self.budget_s < 0:
            raise ValueError(f"budget is {self.budget_s} s, but must be > 0, e.g. --budget 10m")
        unknown = {m for m in self.methods if m.split(":")[0] not in METHODS}
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}, "
                             "or vidtune:field=value,... for a variant")
        for m in self.methods:   # a bad variant is refused before anything runs
            variant(SearchConfig(), m)
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed (--seeds 1)")


def make_race_plan(smoke: bool = False, seeds: int | None = None,
                   methods: tuple[str, ...] | None = None, budget_s: float = 0.0,
                   space: str | None = None) -> RacePlan:
    """The fixed-trial race (budget_s 0), or the race at equal wall time on one space."""
    if budget_s:
        d = SearchConfig()
        data = DataConfig(num_clips=100, frames=4, height=16, width=16, noise=0.2) if smoke else d.data
        plan = RacePlan(smoke, data, space or d.space, num_samples=0,
                        max_epochs=2 if smoke else d.max_epochs,
                        seeds=(0,) if smoke else (0, 1, 2), budget_s=budget_s)
    elif smoke:
        plan = RacePlan(True, DataConfig(num_clips=100, frames=4, height=16, width=16, noise=0.2),
                        "default", num_samples=2, max_epochs=2, seeds=(0,))
    else:   # `make search`'s work: the default space, 12 trials, 6 epochs, the default data
        d = SearchConfig()
        plan = RacePlan(False, d.data, d.space, d.num_samples, d.max_epochs, seeds=(0, 1, 2))
    if seeds is not None:
        plan = replace(plan, seeds=tuple(range(seeds)))
    if methods is not None:
        plan = replace(plan, methods=tuple(methods))
    return plan


@dataclass(frozen=True)
class RaceRun:
    """One method's search at one seed."""

    method: str
    seed: int
    wall_s: float
    reports: list[tuple[float, float]]   # (seconds since the start, val_acc), in time order
    epochs: int
    trials: int
    cpu_busy: float                      # busy CPU time / (wall x cores), whole machine
    epoch_busy: float                    # sum of epoch seconds x threads / (wall x cores)
    storage_mb: float | None = None      # the results folder (vidtune and random)
    space: str = ""                      # the race at equal wall time records its space

    def best_by(self, t: float) -> float:
        """Best val acc reported by time t (NaN before the first report)."""
        return max((acc for s, acc in self.reports if s <= t), default=math.nan)

    @property
    def best(self) -> float:
        return max((acc for _, acc in self.reports), default=math.nan)

    def time_to(self, target: float) -> float:
        """First moment the best-so-far reaches target; inf if it never does."""
        return next((t for t, acc in self.reports if acc >= target - 1e-12), math.inf)

    def best_so_far(self, grid: np.ndarray) -> np.ndarray:
        """Best val acc reported by each time of grid (NaN before the first report)."""
        out = np.full(len(grid), np.nan)
        best = -math.inf
        j = 0
        for i, t in enumerate(grid):
            while j < len(self.reports) and self.reports[j][0] <= t:
                best = max(best, self.reports[j][1])
                j += 1
            out[i] = best if best > -math.inf else np.nan
        return out


def variant(cfg: SearchConfig, method: str) -> SearchConfig:
    """cfg with a method's `field=value,...` overrides (`vidtune:cpu_sharing=restart`)."""
    name, _, spec = method.partition(":")
    if not spec:
        return cfg
    if name != "vidtune":
        raise ValueError(f"method {method!r}: only vidtune takes field=value overrides")
    kinds = {f.name: type(getattr(cfg, f.name)) for f in fields(cfg)}
    changes: dict[str, Any] = {}
    for item in spec.split(","):
        key, sep, text = item.partition("=")
        if not sep or key not in kinds or kinds[key] not in (bool, int, float, str):
            raise ValueError(f"method {method!r}: {item!r} is not field=value over SearchConfig's "
                             f"fields ({', '.join(sorted(kinds))})")
        changes[key] = text.lower() in ("1", "true", "yes") if kinds[key] is bool else kinds[key](text)
    return replace(cfg, **changes)


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat (Linux)."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return math.nan, math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)   # idle + iowait
    return sum(fields) - idle, sum(fields)


def _du_mb(path: str) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def _timed(method: str, seed: int, go: Callable[[float], tuple[list[dict[str, Any]], int, str | None]]) -> RaceRun:
    """Run go(t0) -> (reports with reported_at and val_acc, trials, results folder or None)."""
    busy0, total0 = _cpu_times()
    t0 = time.time()
    rows, trials, folder = go(t0)
    wall = time.time() - t0
    busy1, total1 = _cpu_times()
    reports = sorted((float(r["reported_at"]) - t0, float(r["val_acc"])) for r in rows
                     if r.get("val_acc") is not None and not math.isnan(float(r["val_acc"])))
    worked = sum(float(r.get("epoch_time_s") or 0) * float(r.get("cpu_threads") or 1) for r in rows)
    return RaceRun(method, seed, wall, reports, len(rows), trials,
                   (busy1 - busy0) / (total1 - total0) if total1 > total0 else math.nan,
                   worked / (wall * (os.cpu_count() or 1)), _du_mb(folder) if folder else None)


def _vidtune(cfg: SearchConfig) -> Callable[[float], tuple[list[dict[str, Any]], int, str | None]]:
    def go(t0: float) -> tuple[list[dict[str, Any]], int, str | None]:
        from vidtune.trainable.tune.driver import run_search, shutdown
        from vidtune.trainable.tune.experiment import load_experiment

        outcome = run_search(cfg)
        shutdown()
        exp = load_experiment(outcome.experiment_path)
        return exp.history.to_dict("records"), len(exp.trials), outcome.experiment_path
    return go


def _stock(cfg: SearchConfig) -> Callable[[float], tuple[list[dict[str, Any]], int, str | None]]:
    def go(t0: float) -> tuple[list[dict[str, Any]], int, str | None]:
        from vidtune.trainable.tune.driver import init_ray, shutdown
        from vidtune.trainable.tune.stock import param_space_of, run_stock_tune

        init_ray(cfg)
        # The budget counts from the method's start: Ray's start is spent already.
        left = max(1.0, cfg.time_budget_s - (time.time() - t0)) if cfg.time_budget_s else None
        rows = run_stock_tune(cfg, param_space_of(str(cfg.space)), time_budget_s=left)
        shutdown()
        return rows, len({r["trial_id"] for r in rows}), None
    return go


def _optuna_worker(cfg: dict[str, Any], journal: str, study: str, n_trials: int | None, seed: int,
                   log: str, deadline: float | None = None) -> None:
    """One Optuna worker process: TPE + SuccessiveHalvingPruner over the shared journal."""
    import optuna
    import torch

    from vidtune.search_spaces import get_space
    from vidtune.trainable.core.trial import run_trial

    torch.set_num_threads(1)   # one process per core
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = SearchConfig.from_json(cfg)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    s = optuna.load_study(study_name=study, storage=storage,
                          sampler=optuna.samplers.TPESampler(seed=seed),
                          pruner=optuna.pruners.SuccessiveHalvingPruner())
    define = get_space(search.space).define

    def objective(trial: optuna.Trial) -> float:
        define(trial)
        last = {"val_acc": 0.0}

        def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
            with open(log, "a") as f:
                f.write(json.dumps({"reported_at": time.time(), "val_acc": metrics["val_acc"],
                                    "epoch_time_s": metrics["epoch_time_s"],
                                    "cpu_threads": metrics["cpu_threads"],
                                    "trial": trial.number}) + "\n")
            last.update(metrics)
            trial.report(float(metrics["val_acc"]), int(metrics["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned()

        run_trial(dict(trial.params), search, report)
        return float(last["val_acc"])

    s.optimize(objective, n_trials=n_trials,
               timeout=None if deadline is None else max(0.0, deadline - time.time()))


def _optuna(cfg: SearchConfig, workers: int, root: str) -> Callable[[float], tuple[list[dict[str, Any]], int, str | None]]:
    def go(t0: float) -> tuple[list[dict[str, Any]], int, str | None]:
        import optuna

        folder = Path(root) / cfg.name
        folder.mkdir(parents=True, exist_ok=True)
        journal, log = str(folder / "journal.log"), str(folder / "reports.jsonl")
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
        optuna.create_study(study_name=cfg.name, storage=storage, direction="maximize")
        deadline = t0 + cfg.time_budget_s if cfg.time_budget_s else None
        shares: list[int | None] = [None] * workers if deadline else [
            cfg.num_samples // workers + (i < cfg.num_samples % workers) for i in range(workers)]
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_optuna_worker, args=(cfg.to_json(), journal, cfg.name, n,
                                                          cfg.seed * 100 + i, log, deadline))
                 for i, n in enumerate(shares) if n is None or n]
        for p in procs:
            p.start()
        for p in procs:
            p.join(None if deadline is None else max(0.0, deadline - time.time()))
        for p in procs:   # Optuna's timeout starts no new trial; the running ones end here
            if p.is_alive():
                p.terminate()
                p.join()
        if deadline is None and any(p.exitcode for p in procs):
            raise RuntimeError(f"an Optuna worker failed (exit codes {[p.exitcode for p in procs]})")
        rows = [json.loads(line) for line in Path(log).read_text().splitlines()] if Path(log).exists() else []
        return rows, len({r["trial"] for r in rows}), None
    return go


def save_runs(runs: list[RaceRun], path: str | Path) -> None:
    """The runs as JSON (written after every method, so a long race keeps what it measured)."""
    Path(path).write_text(json.dumps([asdict(r) for r in runs], indent=1))


def load_runs(path: str | Path) -> list[RaceRun]:
    return [RaceRun(**{**d, "reports": [tuple(x) for x in d["reports"]]})
            for d in json.loads(Path(path).read_text())]


def race(plan: RacePlan, root: str, earlier: list[RaceRun] | None = None) -> list[RaceRun]:
    """Every method at every seed, interleaved; Ray is shut down between methods. The runs
    (after `earlier` ones, e.g. another space's) are saved to root/race_runs.json as they
    finish."""
    from vidtune.trainable.tune.driver import shutdown

    load_arrays(plan.data, progress=True)   # the cache is built before any clock starts
    runs = list(earlier or [])
    for k, seed in enumerate(plan.seeds):
        base = SearchConfig(space=plan.space, num_samples=plan.num_samples,
                            max_epochs=plan.max_epochs, seed=seed, data=plan.data,
                            results_dir=root, time_budget_s=plan.budget_s).resolved()
        order = plan.methods[k % len(plan.methods):] + plan.methods[:k % len(plan.methods)]
        for i, method in enumerate(order):
            cfg = replace(variant(base, method), name=f"{method.split(':')[0]}-{plan.space}-{i}-s{seed}"
                          if plan.budget_s else f"{method.split(':')[0]}-{i}-s{seed}")
            go = {"vidtune": lambda c=cfg: _vidtune(c),
                  "ray-tune": lambda c=cfg: _stock(c),
                  "optuna": lambda c=cfg: _optuna(c, plan.workers, root),
                  "random": lambda c=cfg: _vidtune(replace(c, sampler="random", scheduler="none")),
                  }[method.split(":")[0]]()
            shutdown()
            run = replace(_timed(method, seed, go), space=plan.space if plan.budget_s else "")
            runs.append(run)
            save_runs(runs, Path(root) / RUNS_FILE)
            print(f"race seed {seed} {method}: best {run.best:.4f}, {run.wall_s:.0f} s, "
                  f"{run.epochs} epochs, cores busy {run.cpu_busy:.0%}", file=sys.stderr, flush=True)
    return runs


@dataclass(frozen=True)
class Standing:
    """The race's figures, per method over the seeds."""

    targets: dict[int, float]                       # seed -> target val acc
    ttt: dict[str, dict[int, float]]                # method -> seed -> time to target (s)
    median_ttt: dict[str, float]
    mean_best: dict[str, float]
    median_wall: dict[str, float]
    median_epochs: dict[str, float]
    median_cpu: dict[str, float]
    median_epoch_busy: dict[str, float]


def standing(runs: list[RaceRun]) -> Standing:
    seeds = sorted({r.seed for r in runs})
    methods = list(dict.fromkeys(r.method for r in runs))
    by = {(r.method, r.seed): r for r in runs}
    targets = {s: max(by[m, s].best for m in methods if (m, s) in by) - TARGET_GAP for s in seeds}
    ttt = {m: {s: by[m, s].time_to(targets[s]) for s in seeds if (m, s) in by} for m in methods}

    def med(f: Callable[[RaceRun], float], m: str) -> float:
        return statistics.median(f(by[m, s]) for s in seeds if (m, s) in by)

    return Standing(
        targets, ttt,
        median_ttt={m: statistics.median(ttt[m].values()) for m in methods},
        mean_best={m: statistics.mean(by[m, s].best for s in seeds if (m, s) in by) for m in methods},
        median_wall={m: med(lambda r: r.wall_s, m) for m in methods},
        median_epochs={m: med(lambda r: float(r.epochs), m) for m in methods},
        median_cpu={m: med(lambda r: r.cpu_busy, m) for m in methods},
        median_epoch_busy={m: med(lambda r: r.epoch_busy, m) for m in methods},
    )


def plot_anytime(runs: list[RaceRun], png: str | Path) -> Path:
    """Best-so-far against wall time, one line per method: the median over seeds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    end = max(r.wall_s for r in runs)
    grid = np.linspace(0, end, 400)
    fig = Figure(figsize=(7.5, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for method in dict.fromkeys(r.method for r in runs):
        mine = [r for r in runs if r.method == method]
        if not mine:
            continue
        curves = np.vstack([r.best_so_far(grid) for r in mine])      # (seeds, len(grid))
        enough = np.sum(~np.isnan(curves), axis=0) * 2 > len(mine)   # most seeds have a value
        with np.errstate(all="ignore"):
            median = np.where(enough, np.nanmedian(np.where(np.isnan(curves), -np.inf, curves), axis=0), np.nan)
        ax.plot(grid, median, label=f"{method} ({len(mine)} seeds)", linewidth=2)
    ax.set_xlabel("wall time since the method started (s)")
    ax.set_ylabel("best val acc so far (median over seeds)")
    ax.set_title("Anytime performance: same model, data, space, trials and epochs")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, format="png")
    return Path(png)
