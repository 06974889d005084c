"""The scale benchmark: thousands of sub-second trials, the driver killed once.

One real search: `vidtune search` of `trials` trials of the `tiny` space on tiny clips (each
trial well under a second), as a subprocess with its embedded Ray, on `slots` CPUs. When
`kill_at` trials have finished, the driver and its Ray are SIGKILLed (a lost machine) and
`vidtune resume` continues the search to the end. Recorded against the finished-trial count
(the marks, e.g. 250, 500, 1000, 2000):

- per-trial overhead of each window of trials (by first start, between two marks):
  wall x slots / trials - the median trial time, where a trial's time runs from its
  trainable's start to its last report (the adapter's float clock) and the wall from the
  window's first start to its last report (trials that ran in both drivers are left out, and
  so is the time between the SIGKILL and the resumed driver's first new trial, which is
  reported as the resume's time);
- the driver's CPU seconds per finished trial, its resident memory (RSS) and peak, and the
  RSS growth per 1,000 trials (least squares, per driver), from driver.jsonl (stats.py);
- the results folder per finished trial (checkpoints aside), optuna.db, the experiment
  snapshot's size, and its duration (the median of the driver's last 20 snapshots);
- `vidtune resume`: seconds from the command's start to the first new trial's start;
- `vidtune analyze` (a fresh process, as a user runs it) on the folder as it stood at each
  mark (the first N trials of the snapshot, their folders linked);
- the Optuna mirror: its write per finished trial and its reconcile (a resumed driver's
  first step) over N finished trials, on a fresh SQLite file, with the search's own trials;
- TPE's proposal time over N finished trials (in-memory study, the driver's sampler
  settings), also beyond the search's count, for docs/scaling.md.

The search runs as `vidtune search` and `vidtune resume` processes (the driver must be
killable); everything else reads the folder without Ray.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from vidtune.data import DataConfig

MARKS = (250, 500, 1000, 2000)
TPE_COUNTS = (250, 500, 1000, 2000, 5000, 10000)
DATA = DataConfig(num_clips=40, frames=2, height=8, width=8, noise=0.2)   # tiny clips
NAME = "scale"
# Goals, for 2,000 trials on 2 cores.
GOAL_OVERHEAD_S = 0.100        # per-trial overhead, at every mark
GOAL_FLAT_S_PER_1000 = 0.020   # "flat": the overhead may grow at most this much per 1,000 trials
GOAL_RSS_MB_PER_1000 = 50.0
GOAL_ANALYZE_S = 20.0
GOAL_RESUME_S = 30.0
GOAL_DISK_KB = 30.0            # results folder + optuna.db per finished trial, checkpoints aside


@dataclass(frozen=True)
class ScalePlan:
    smoke: bool
    trials: int
    marks: tuple[int, ...]
    kill_at: int
    data: DataConfig = DATA
    max_epochs: int = 3          # ASHA (grace 1, rf 3) decides at epoch 1
    slots: int = 2               # embedded Ray CPUs, one per trial
    tpe_counts: tuple[int, ...] = TPE_COUNTS
    asks: int = 20               # TPE proposals timed per count

    def __post_init__(self) -> None:
        if not self.marks or list(self.marks) != sorted(set(self.marks)) or self.marks[-1] != self.trials:
            raise ValueError(f"marks {self.marks} must increase and end at trials ({self.trials})")
        if not self.marks[0] <= self.kill_at < self.trials:
            raise ValueError(f"kill_at is {self.kill_at}, but must lie in [{self.marks[0]}, "
                             f"{self.trials}) so that both drivers run trials")


def make_scale_plan(smoke: bool = False, trials: int | None = None) -> ScalePlan:
    """2,000 trials killed at 1,000; --smoke: 32 killed at 12 (marks 12, 32); --trials N: N,
    killed at N/2, marks at N/8, N/4, N/2 and N."""
    if trials is not None:
        if trials < 16:
            raise ValueError(f"trials is {trials}, but the benchmark needs at least 16")
        marks = tuple(sorted({trials // 8, trials // 4, trials // 2, trials}))
        return ScalePlan(smoke, trials, marks, trials // 2,
                         tpe_counts=tuple(n for n in TPE_COUNTS if n <= 5 * trials),
                         asks=5 if smoke else 20)
    if smoke:
        # 32, killed once 12 have finished: driver.jsonl is rewritten every ~2 s, so the kill
        # lands some trials past 12, and well before the end.
        return ScalePlan(True, 32, (12, 32), 12, tpe_counts=(12, 32), asks=3)
    return ScalePlan(False, MARKS[-1], MARKS, MARKS[-1] // 2)


# -- pure figures (tested on hand-made numbers) ------------------------------------------
@dataclass(frozen=True)
class Window:
    """Trials first..last (creation order, 1-based) and what they cost."""

    first: int
    last: int
    trials: int                  # measured: single-driver trials with a report
    wall_s: float                # first start to last report
    median_trial_s: float
    mean_trial_s: float
    slots: int

    @property
    def overhead_s(self) -> float:
        """The benchmark's definition: wall x slots / trials - the median trial time."""
        return self.wall_s * self.slots / self.trials - self.median_trial_s

    @property
    def overhead_mean_s(self) -> float:
        """The same with the mean trial time: what a slot spends per trial beyond the trial."""
        return self.wall_s * self.slots / self.trials - self.mean_trial_s


def trial_spans(history: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per trial (in creation order): start, end, seconds and how many driver sessions it ran
    in (its distinct started_at), from the history table's float clock columns."""
    h = history.dropna(subset=["started_at", "reported_at"])
    g = h.groupby("trial_id")
    spans = pd.DataFrame({"start": g["started_at"].min(), "end": g["reported_at"].max(),
                          "sessions": g["started_at"].nunique()})
    spans = spans.reindex([t for t in order if t in spans.index])
    spans["seconds"] = spans["end"] - spans["start"]
    place = {t: i + 1 for i, t in enumerate(order)}
    spans["order"] = [place[t] for t in spans.index]
    return spans


def start_order(history: pd.DataFrame) -> list[str]:
    """Trial ids in the order their trainables first started: creation order for Tune's FIFO
    start. Not the snapshot's order: Ray 2.60 fills its trial_data from a set of the trials
    changed since the last snapshot (TuneController._get_trial_checkpoints), so windows by the
    snapshot's order held trials from the whole search."""
    h = history.dropna(subset=["started_at"])
    return list(h.groupby("trial_id")["started_at"].min().sort_values(kind="stable").index)


def windows(spans: pd.DataFrame, marks: tuple[int, ...], slots: int,
            down: tuple[float, float] | None = None) -> list[Window]:
    """One Window per span of creation order between two marks (0 before the first). `down`:
    the time no driver ran (from the SIGKILL to the resumed driver's first new trial, which
    the benchmark reports as the resume's time), left out of the wall of a window it falls in."""
    out = []
    for lo, hi in zip((0, *marks[:-1]), marks, strict=True):
        w = spans[(spans["order"] > lo) & (spans["order"] <= hi) & (spans["sessions"] == 1)]
        if len(w) < 2:
            continue
        begin, end = float(w["start"].min()), float(w["end"].max())
        idle = max(0.0, min(end, down[1]) - max(begin, down[0])) if down else 0.0
        out.append(Window(lo + 1, hi, len(w), end - begin - idle,
                          float(w["seconds"].median()), float(w["seconds"].mean()), slots))
    return out


def growth_per_1000(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y against x, per 1,000 of x; nan with fewer than 2 distinct x."""
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    if len(set(xs.tolist())) < 2:
        return math.nan
    return float(np.polyfit(xs, ys, 1)[0] * 1000)


def flat_growth(ws: list[Window]) -> float:
    """How much the per-trial overhead grows per 1,000 trials: the slope through the windows'
    midpoints (nan with fewer than two windows)."""
    return growth_per_1000([((w.first + w.last) / 2, w.overhead_s) for w in ws])


# -- measuring ---------------------------------------------------------------------------
@dataclass
class Mark:
    """The search as it stood when `finished` (>= at) trials had ended."""

    at: int                      # the mark: 250, 500, ...
    finished: int
    driver: int                  # 1: the first driver, 2: the resumed one
    trials: int                  # created
    rss_mb: float
    peak_rss_mb: float
    cpu_s: float
    snapshot_s: float            # median of the driver's last 20 snapshots
    snapshot_max_s: float
    snapshots: int
    state_kb: float              # the newest experiment_state-*.json
    folder_kb: float             # the results folder without checkpoints (optuna.db included)
    db_kb: float
    checkpoints_kb: float
    analyze_s: float = math.nan
    db_write_ms: float = math.nan    # the mirror's write of one finished trial (median)
    reconcile_s: float = math.nan    # a resumed mirror's first step over `finished` trials


@dataclass
class ScaleRun:
    plan: ScalePlan
    marks: list[Mark]
    windows: list[Window]
    rss_growth: dict[int, float]          # driver -> MB per 1,000 trials
    cpu_per_trial: dict[int, float]       # driver -> CPU seconds per finished trial
    resume_s: float                       # `vidtune resume` to the first new trial's start
    resumed_trials: int                   # unfinished trials the resume continued
    wall_s: dict[int, float]              # driver -> seconds its process ran
    tail_s: float                         # the last trial's end to the driver's exit
    log_kb: dict[int, float]              # driver -> its console output
    tpe_ms: dict[int, float]              # finished trials -> median proposal (ms)
    checkpoint_mb_default: float          # one checkpoint of the default space's seed model
    num_trials: int
    errored: int
    stats: list[dict[str, Any]] = field(default_factory=list)   # every driver.jsonl line seen

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["plan"] = {**asdict(self.plan), "data": asdict(self.plan.data)}
        d["windows"] = [{**asdict(w), "overhead_s": w.overhead_s,
                         "overhead_mean_s": w.overhead_mean_s} for w in self.windows]
        d["flat_growth_s"] = flat_growth(self.windows)
        return d


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidtune.scripts.cli", *args]


def search_command(plan: ScalePlan, root: Path) -> list[str]:
    d = plan.data
    data = ["--num-clips", str(d.num_clips), "--frames", str(d.frames), "--height", str(d.height),
            "--width", str(d.width), "--noise", str(d.noise)]
    if d.cache_dir:
        data += ["--cache-dir", d.cache_dir]
    return _cmd("search", "--space", "tiny", "--num-samples", str(plan.trials),
                "--max-epochs", str(plan.max_epochs), "--grace-period", "1",
                "--reduction-factor", "3", "--num-cpus", str(plan.slots), "--results-dir",
                str(root), "--name", NAME, *data)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def read_stats(experiment: Path) -> dict[str, Any] | None:
    from vidtune.trainable.tune.stats import DRIVER_FILE

    try:
        text = (experiment / DRIVER_FILE).read_text()
        return json.loads(text) if text.endswith("\n") else None   # else: being rewritten
    except (OSError, json.JSONDecodeError):
        return None


def folder_sizes(experiment: Path) -> tuple[float, float, float, float]:
    """(folder without checkpoints, optuna.db, checkpoints, newest experiment state) in KB."""
    from vidtune.trainable.tune.experiment import STATE_GLOB
    from vidtune.trainable.tune.optuna_mirror import DB_FILE

    rest = checkpoints = 0
    for dirpath, dirnames, filenames in os.walk(experiment):
        dirnames[:] = [d for d in dirnames if d != "analysis"]   # written by `vidtune analyze`
        inside = any(p.startswith("checkpoint_") for p in Path(dirpath).relative_to(experiment).parts)
        for name in filenames:
            try:
                size = os.stat(os.path.join(dirpath, name)).st_size
            except OSError:   # deleted while we walked (a checkpoint the keeper removed)
                continue
            if inside:
                checkpoints += size
            else:
                rest += size
    db = experiment / DB_FILE
    states = sorted(experiment.glob(STATE_GLOB))
    return (rest / 1024, db.stat().st_size / 1024 if db.exists() else 0.0, checkpoints / 1024,
            states[-1].stat().st_size / 1024 if states else 0.0)


def _mark(at: int, line: dict[str, Any], driver: int, experiment: Path) -> Mark:
    folder, db, ckpt, state = folder_sizes(experiment)
    return Mark(at, int(line["finished"]), driver, int(line["trials"]), float(line["rss_mb"]),
                float(line["peak_rss_mb"]), float(line["cpu_s"]), float(line["snapshot_s"]),
                float(line["snapshot_max_s"]), int(line["snapshots"]), state, folder, db, ckpt)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # the driver and its embedded Ray: a lost machine
    except ProcessLookupError:
        pass
    proc.wait()


def run_driver(cmd: list[str], experiment: Path, log: Path, driver: int, plan: ScalePlan,
               marks: list[Mark], stats: list[dict[str, Any]], kill_at: int | None,
               on_poll: Any = None, timeout_s: float = 7200.0) -> float:
    """Run one driver process to its end (or SIGKILL it once kill_at trials have finished),
    recording the marks it passes; returns its wall seconds."""
    t0 = time.time()
    last: dict[str, Any] | None = None

    def record(line: dict[str, Any]) -> None:
        for at in plan.marks:
            if line["finished"] >= at and at not in {m.at for m in marks}:
                marks.append(_mark(at, line, driver, experiment))
                print(f"scale: {line['finished']} trials finished (driver {driver}): RSS "
                      f"{line['rss_mb']:.0f} MB, snapshot {line['snapshot_s']:.3f} s",
                      file=sys.stderr, flush=True)

    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(),
                                start_new_session=True)
        try:
            while True:
                done = proc.poll() is not None
                line = read_stats(experiment)
                if line is not None and line != last and line["time"] >= t0:   # this driver's
                    last = line
                    stats.append({**line, "driver": driver})
                    record(line)
                    if kill_at is not None and line["finished"] >= kill_at:
                        _kill_group(proc)
                        return time.time() - t0
                if on_poll is not None:
                    on_poll()
                if done:
                    break
                if time.time() - t0 > timeout_s:
                    raise RuntimeError(f"driver {driver} ran past {timeout_s:.0f} s; see {log}")
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                _kill_group(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"driver {driver} exited with status {proc.returncode}; see {log}")
    if last is not None:   # Tune's final snapshot is taken outside its step loop: not in the stats
        from vidtune.trainable.tune.experiment import read_trial_records

        ended = sum(r.status in ("TERMINATED", "ERROR") for r in read_trial_records(str(experiment)))
        record({**last, "finished": ended})
    return time.time() - t0


def _first_report_start(experiment: Path, names: set[str]) -> float | None:
    """The earliest started_at among trial folders not in `names` that have reported."""
    starts = []
    for entry in os.scandir(experiment):
        if entry.name.startswith("trial_") and entry.name not in names:
            csv = Path(entry.path) / "progress.csv"
            try:
                df = pd.read_csv(csv, usecols=["started_at"], nrows=1)
            except (OSError, ValueError, pd.errors.EmptyDataError, pd.errors.ParserError):
                continue
            if len(df):
                starts.append(float(df["started_at"].iloc[0]))
    return min(starts) if starts else None


def truncated_copy(experiment: Path, n: int, dest: Path) -> Path:
    """The folder as the first n trials of its snapshot make it: vidtune.json, a snapshot of
    those n trials, and links to their folders (what `vidtune analyze` reads)."""
    from vidtune.trainable.core.search_config import CONFIG_FILE
    from vidtune.trainable.tune.experiment import STATE_GLOB

    dest.mkdir(parents=True)
    shutil.copy(experiment / CONFIG_FILE, dest / CONFIG_FILE)
    state_file = sorted(experiment.glob(STATE_GLOB))[-1]
    state = json.loads(state_file.read_text())
    state["trial_data"] = state["trial_data"][:n]
    (dest / state_file.name).write_text(json.dumps(state))
    for trial_json, _ in state["trial_data"]:
        folder = json.loads(trial_json).get("relative_logdir")
        if folder and (experiment / folder).exists():
            os.symlink(experiment / folder, dest / folder)
    return dest


def time_analyze(folder: Path, out: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(_cmd("analyze", str(folder), "--out", str(out)), capture_output=True,
                          text=True, env=_env(), timeout=1800)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"vidtune analyze {folder} failed: {done.stderr[-2000:]}")
    return took


def _stand_ins(exp: Any, n: int, db_folder: Path) -> list[tuple[SimpleNamespace, list[dict]]]:
    """The first n finished trials of the search as the mirror sees Ray's trials (id, status,
    config, last result, storage), each with its per-epoch results."""
    import pyarrow.fs

    from vidtune.trainable.tune.experiment import read_trial_records

    records = [r for r in read_trial_records(exp.path) if r.status in ("TERMINATED", "ERROR")][:n]
    by_trial = dict(iter(exp.history.groupby("trial_id")))
    storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                              experiment_fs_path=str(db_folder))
    out = []
    for r in records:
        df = by_trial.get(r.trial_id, pd.DataFrame(columns=["epoch", "val_acc"]))
        results = [{"epoch": int(e), "val_acc": float(v)}
                   for e, v in zip(df["epoch"], df["val_acc"], strict=True)]
        out.append((SimpleNamespace(trial_id=r.trial_id, status=r.status, config=r.config,
                                    last_result=r.last_result, storage=storage), results))
    return out


def time_mirror(exp: Any, n: int, space: str, max_epochs: int, work: Path) -> tuple[float, float]:
    """(median ms to write one finished trial, seconds of a resumed mirror's reconcile) over
    the first n finished trials, on a fresh SQLite study."""
    import optuna

    from vidtune.trainable.tune.optuna_mirror import OptunaMirror

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work.mkdir(parents=True)
    trials = _stand_ins(exp, n, work)
    first = OptunaMirror(NAME, space, max_epochs)
    writes = []
    for trial, results in trials:
        for result in results:
            first.on_trial_result(0, [], trial, result)
        t0 = time.perf_counter()
        first.on_trial_complete(0, [], trial)
        writes.append(time.perf_counter() - t0)
    state = first.get_state()
    resumed = OptunaMirror(NAME, space, max_epochs)   # as Tune restores it on resume
    if state:
        resumed.set_state(state)
    t0 = time.perf_counter()
    resumed.on_step_begin(0, [t for t, _ in trials])
    reconcile = time.perf_counter() - t0
    return 1000 * statistics.median(writes[1:] or writes), reconcile


def time_tpe(exp: Any, counts: tuple[int, ...], asks: int, seed: int = 0) -> dict[int, float]:
    """Median ms of one TPE proposal (the driver's sampler settings, the tiny space) over n
    finished trials: the search's own trials, repeated to reach n beyond its count."""
    import optuna

    from vidtune.search_spaces import get_space, space_distributions
    from vidtune.trainable.core.results import TrialStatus
    from vidtune.trainable.tune.tpe import BoundedTPESampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = space_distributions("tiny")
    states = {TrialStatus.COMPLETED.value: optuna.trial.TrialState.COMPLETE,
              TrialStatus.STOPPED.value: optuna.trial.TrialState.PRUNED}
    curves = {t: dict(zip(df["epoch"].astype(int), df["val_acc"].astype(float), strict=True))
              for t, df in exp.history.groupby("trial_id")}
    frozen = []
    for row in exp.trials.itertuples():
        if row.status not in states or row.trial_id not in curves:
            continue
        state = states[row.status]
        frozen.append(optuna.trial.create_trial(
            state=state, value=float(row.final_val_acc) if state == optuna.trial.TrialState.COMPLETE else None,
            params={k: getattr(row, k) for k in dists}, distributions=dists,
            intermediate_values=curves[row.trial_id]))
    if not frozen:
        return {}
    define = get_space("tiny").define
    out = {}
    for n in counts:
        sampler = BoundedTPESampler(seed=seed, n_startup_trials=10)   # as make_searcher at >= 30 trials
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials([frozen[i % len(frozen)] for i in range(n)])
        took = []
        for _ in range(asks):
            t0 = time.perf_counter()
            define(study.ask())
            took.append(time.perf_counter() - t0)
        out[n] = 1000 * statistics.median(took)
    return out


def default_checkpoint_mb() -> float:
    """One checkpoint of the default space's seed model: float32 weights and Adam's two moments."""
    from vidtune.search_spaces import get_space
    from vidtune.trainable.core.model import build_model
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.core.trial import trial_configs

    model_cfg, _ = trial_configs(dict(get_space("default").default), SearchConfig(), 10)
    params = sum(p.numel() for p in build_model(model_cfg, seed=0).parameters())
    return 3 * 4 * params / 2**20


def run_scale(plan: ScalePlan, root: Path) -> ScaleRun:
    """The whole benchmark in `root` (which must not hold a search named `scale`)."""
    from vidtune.data import load_arrays
    from vidtune.trainable.tune.experiment import load_experiment, read_trial_records

    root = root.resolve()
    experiment = root / NAME
    load_arrays(plan.data, progress=True)   # the cache is built before any clock starts
    marks: list[Mark] = []
    stats: list[dict[str, Any]] = []
    wall: dict[int, float] = {}
    print(f"scale: {plan.trials} trials, SIGKILL at {plan.kill_at}", file=sys.stderr, flush=True)
    wall[1] = run_driver(search_command(plan, root), experiment, root / "driver1.log", 1, plan,
                         marks, stats, kill_at=plan.kill_at)
    before = {e.name for e in os.scandir(experiment) if e.name.startswith("trial_")}
    unfinished = sum(r.status not in ("TERMINATED", "ERROR") for r in read_trial_records(str(experiment)))
    first_new: list[float] = []
    resumed_at = time.time()

    def watch() -> None:
        if not first_new:
            start = _first_report_start(experiment, before)
            if start is not None:
                first_new.append(start)

    wall[2] = run_driver(_cmd("resume", str(experiment)), experiment, root / "driver2.log", 2, plan,
                         marks, stats, kill_at=None, on_poll=watch)
    exited = time.time()
    watch()
    exp = load_experiment(experiment)
    order = start_order(exp.history)
    spans = trial_spans(exp.history, order)
    tail = exited - float(spans["end"].max()) if len(spans) else math.nan
    ws = windows(spans, plan.marks, plan.slots, (resumed_at, first_new[0]) if first_new else None)
    rss = {d: growth_per_1000([(s["finished"], s["rss_mb"]) for s in stats
                               if s["driver"] == d and s["finished"] >= (plan.marks[0] if d == 1 else 0)])
           for d in (1, 2)}
    cpu = {}
    for d in (1, 2):
        mine = [s for s in stats if s["driver"] == d]
        if len(mine) >= 2 and mine[-1]["finished"] > mine[0]["finished"]:
            cpu[d] = (mine[-1]["cpu_s"] - mine[0]["cpu_s"]) / (mine[-1]["finished"] - mine[0]["finished"])
    # The readers, on the folder as it stood at each mark.
    work = root / "bench-work"
    for mark in marks:
        n = mark.at
        folder = experiment if n >= len(order) else truncated_copy(experiment, n, work / f"at-{n}")
        print(f"scale: vidtune analyze and the Optuna mirror at {n} trials", file=sys.stderr, flush=True)
        mark.analyze_s = time_analyze(folder, work / f"analysis-{n}")
        mark.db_write_ms, mark.reconcile_s = time_mirror(exp, n, "tiny", plan.max_epochs,
                                                         work / f"mirror-{n}")
    print("scale: TPE proposals", file=sys.stderr, flush=True)
    tpe = time_tpe(exp, plan.tpe_counts, plan.asks)
    logs = {d: (root / f"driver{d}.log").stat().st_size / 1024 for d in (1, 2)}
    return ScaleRun(plan, marks, ws, rss, cpu,
                    resume_s=first_new[0] - resumed_at if first_new else math.nan,
                    resumed_trials=unfinished, wall_s=wall, tail_s=tail, log_kb=logs, tpe_ms=tpe,
                    checkpoint_mb_default=default_checkpoint_mb(), num_trials=len(exp.trials),
                    errored=int((exp.trials["status"] == "errored").sum()) if len(exp.trials) else 0,
                    stats=stats)


def with_cache(plan: ScalePlan, cache_dir: str | None) -> ScalePlan:
    return replace(plan, data=replace(plan.data, cache_dir=cache_dir)) if cache_dir else plan
