"""The search driver: Optuna TPE proposes, Ray Tune runs trials, ASHA stops weak ones.

run_search() starts a new experiment; resume_search() continues one after Ctrl-C, a killed
driver or a lost machine. Both return a SearchOutcome. run_repeats() trains one fixed config
several times (benchmarks); shutdown() stops the Ray that a search leaves running.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune import CheckpointConfig, FailureConfig, ProgressReporter, RunConfig, TuneConfig
from ray.tune.schedulers import FIFOScheduler
from ray.tune.schedulers.resource_changing_scheduler import (
    DistributeResources,
    ResourceChangingScheduler,
)
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from vidtune.search_spaces import trace_space
from vidtune.trainable.core.failures import error_counts
from vidtune.trainable.core.lease import Lease
from vidtune.trainable.core.packing import resolve_gpus_per_trial
from vidtune.trainable.core.preflight import check_data, check_results_writable, preflight
from vidtune.trainable.core.results import Best, TrialStatus, best_reported
from vidtune.trainable.core.search_config import CONFIG_FILE, SearchConfig, format_duration
from vidtune.trainable.core.space_check import first_trial
from vidtune.trainable.core.storage import filesystem, is_uri, read_text, write_text
from vidtune.trainable.core.tracking import check_tracking_uri
from vidtune.trainable.tune.adapter import tune_trainable
from vidtune.trainable.tune.asha import ResumableASHA, RungKeeper
from vidtune.trainable.tune.budget import (
    BUDGET_FILE,
    Budget,
    BudgetedSearch,
    BudgetKeeper,
    set_current,
)
from vidtune.trainable.tune.cluster import join_cluster
from vidtune.trainable.tune.cluster_cache import build_cache
from vidtune.trainable.tune.experiment import load_experiment
from vidtune.trainable.tune.fail_fast import NoRetry, StorageLostError, StorageWatch
from vidtune.trainable.tune.loggers import loggers
from vidtune.trainable.tune.mlflow_logger import finish_tracking, mlflow_trials
from vidtune.trainable.tune.optuna_mirror import OptunaMirror
from vidtune.trainable.tune.progress import BestSoFar, ProgressLine, TrialTable
from vidtune.trainable.tune.quiet import quiet_ray_hints
from vidtune.trainable.tune.resume_files import check_resume_files
from vidtune.trainable.tune.retention import CheckpointKeeper
from vidtune.trainable.tune.slim import SlimFinished
from vidtune.trainable.tune.snapshots import DropStaleSnapshots
from vidtune.trainable.tune.stats import DriverStats, SnapshotClock
from vidtune.trainable.tune.threads import ThreadSharer
from vidtune.trainable.tune.tpe import BoundedTPESampler
from vidtune.trainable.tune.warm_start import WarmStart, load_warm_start

METRIC, MODE = "val_acc", "max"
BEST_FILE = "best.json"


def trial_dirname(trial) -> str:
    """Short, stable trial folder names (module-level: pickled with the experiment)."""
    return f"trial_{trial.trial_id}"


def make_trainable(cfg: SearchConfig):
    trainable = tune.with_parameters(tune_trainable, search=cfg)
    return tune.with_resources(trainable, {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})


def trial_slots(cfg: SearchConfig) -> int:
    """How many trials the running Ray cluster fits at once (or --max-concurrent, if set)."""
    if cfg.max_concurrent:
        return cfg.max_concurrent
    total = ray.cluster_resources()
    slots = int(total.get("CPU", 1) // cfg.cpus_per_trial)
    if cfg.gpus_per_trial > 0:
        slots = min(slots, int(total.get("GPU", 0) // cfg.gpus_per_trial))
    return max(1, min(slots, cfg.num_samples) if cfg.num_samples else slots)


def make_searcher(cfg: SearchConfig, slots: int, warm: WarmStart | None = None) -> BudgetedSearch:
    """Seeded TPE over the space, its first trial first (the seed configuration by default;
    with a warm start, the earlier searches' best), after the warm start's earlier trials.

    The ConcurrencyLimiter matters twice: TPE proposes only as many configs as can run (later
    ones learn from earlier results), and Tune starts `slots` trials at once instead of one
    at a time (it keeps a single pending trial for an unwrapped custom searcher). Its gate
    closes when the time budget cannot pay for another trial.
    """
    space = cfg.search_space()
    warm = warm or WarmStart()
    first = first_trial(space)
    if warm.trials:   # the earlier best goes first; TPE knows the seed configuration's value
        first = {**first, **warm.best_params()}
    prior = dict(first)   # the user's prior, for --tpe-prior-weight (tpe.py)
    if warm.has_tried(first):   # an earlier search ran exactly this trial: TPE knows its value
        first = {}
    if cfg.sampler == "random":   # the baseline the benchmarks compare TPE against
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=cfg.seed)
    else:
        expected = cfg.num_samples or 30   # with only a time budget: a guess for the startup size
        startup = max(2, min(10, expected // 3))
        if cfg.warm_start_use == "explore":   # TPE counts the warm trials as start-up trials
            startup += len(warm.trials)
        sampler = BoundedTPESampler(seed=cfg.seed, n_startup_trials=startup,
                                    multivariate=cfg.tpe_multivariate,
                                    constant_liar=cfg.tpe_constant_liar,
                                    prior=prior, prior_weight=cfg.tpe_prior_weight)
    searcher = OptunaSearch(space=space.define, metric=METRIC, mode=MODE, sampler=sampler,
                            points_to_evaluate=[first] if first else None)
    if warm.trials:
        assert searcher._ot_study is not None   # created in __init__, as the space is given
        # Into the study before the first suggest. OptunaSearch.add_evaluated_point refuses a
        # define-by-run space (ray/tune/search/optuna/optuna_search.py), so the trials go to
        # the Optuna study it created in __init__. The study is pickled with the searcher, so a
        # resumed search keeps them.
        searcher._ot_study.add_trials(list(warm.trials))
    return BudgetedSearch(ConcurrencyLimiter(searcher, max_concurrent=slots))


def make_scheduler(cfg: SearchConfig) -> ResumableASHA | FIFOScheduler:
    if cfg.scheduler == "none":   # no early stopping: every trial trains max_epochs
        return FIFOScheduler()
    return ResumableASHA(time_attr="epoch", max_t=cfg.max_epochs, grace_period=cfg.grace_period,
                         reduction_factor=cfg.reduction_factor, promotion_cap=cfg.promotion_cap,
                         cost_factor=cfg.asha_cost_factor)


def init_ray(cfg: SearchConfig) -> None:
    """Join the cluster at cfg.address, or start an embedded local Ray (never a stray cluster)."""
    if ray.is_initialized():
        return
    if cfg.address:
        join_cluster(cfg.address)   # a failed connection or authentication: one line, the fix
        return
    kwargs: dict[str, Any] = {"address": "local", "include_dashboard": False, "log_to_driver": False}
    if cfg.num_cpus:
        kwargs["num_cpus"] = cfg.num_cpus
    if cfg.num_gpus >= 0:
        kwargs["num_gpus"] = cfg.num_gpus
    ray.init(**kwargs)


def ray_auth_mode() -> str:
    """"token" or "disabled": this process's Ray token auth. Ray 2.60 fixes it from
    RAY_AUTH_MODE when it is first imported, and a driver whose mode is not its cluster's
    cannot join it (InvalidAuthToken), so a `ray start` cluster started here must use it."""
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    return "token" if is_token_auth_enabled() else "disabled"


def shutdown() -> None:
    """Stop the Ray this process started or joined; no-op if none.

    run_search leaves Ray up, so later searches in the same process reuse it (the benchmarks
    run many); a caller that wants a Ray of other sizes, or none, ends it here.
    """
    if ray.is_initialized():
        ray.shutdown()


def check_cluster(cfg: SearchConfig) -> None:
    """Fail early, naming the fix, when the cluster cannot run this search."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    if cfg.gpus_per_trial > 0 and total.get("GPU", 0) < cfg.gpus_per_trial:
        raise ValueError(f"gpus_per_trial is {cfg.gpus_per_trial}, but the Ray cluster has "
                         f"{total.get('GPU', 0)} GPUs; use --gpus-per-trial 0 or a GPU cluster")
    if total.get("CPU", 0) < cfg.cpus_per_trial:
        raise ValueError(f"cpus_per_trial is {cfg.cpus_per_trial}, but the Ray cluster has "
                         f"{total.get('CPU', 0)} CPUs")
    if len(nodes) > 1:
        if not cfg.storage:
            raise ValueError(f"the Ray cluster has {len(nodes)} nodes: pass --storage with a path "
                             "every node can reach (e.g. /mnt/nfs/vidtune) or a URI (s3://...)")
        if not is_uri(cfg.storage):
            check_shared_path(cfg.storage, nodes)


@ray.remote(num_cpus=0)
def _path_has(path: str) -> bool:
    return Path(path).exists()


def check_shared_path(path: str, nodes: list[dict]) -> None:
    """Write a marker file here and ask every node whether it sees it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    Path(path).mkdir(parents=True, exist_ok=True)
    marker = Path(path) / f".vidtune-check-{uuid.uuid4().hex}"
    marker.touch()
    try:
        refs = {n["NodeManagerAddress"] + " " + n["NodeID"][:8]: _path_has.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(str(marker)) for n in nodes}
        missing = [name for name, ref in refs.items() if not ray.get(ref, timeout=60)]
    finally:
        marker.unlink(missing_ok=True)
    if missing:
        raise ValueError(f"storage {path!r} is not shared: nodes {missing} cannot see it; "
                         "use a network filesystem mounted on every node, or a URI")


def trial_table(cfg: SearchConfig, slots: int) -> ProgressReporter:
    """The live view: a progress line every 15 s (progress.py), or with --verbose the trial
    table: sampled parameters, the latest epoch's metrics, the progress line above it.

    Only the parameters every trial samples: CLIReporter's best-trial line raises KeyError on
    a trial config without one of its columns (a conditional parameter, e.g. dropout only with
    two LSTM layers).
    """
    if not cfg.verbose:
        return ProgressLine(cfg.num_samples, slots)
    trace = trace_space(cfg.search_space())
    params = [name for name, s in trace.sampled.items() if s.runs == trace.num_runs]
    return TrialTable(
        cfg.num_samples, slots,
        parameter_columns=params,
        metric_columns={"epoch": "epoch", "train_loss": "train_loss", "val_loss": "val_loss",
                        "val_acc": "val_acc", "epoch_time_s": "s/epoch", "cpu_threads": "threads"},
        max_report_frequency=15, sort_by_metric=True,
    )


def callbacks(cfg: SearchConfig, scheduler: ResumableASHA | FIFOScheduler) -> list[tune.Callback]:
    """Saved with the experiment and restored as they are on resume: keep them light."""
    out: list[tune.Callback] = [OptunaMirror(cfg.name, cfg.space, cfg.max_epochs, cfg.optuna_storage),
                                CheckpointKeeper(cfg.keep_checkpoints),
                                BudgetKeeper(cfg.grace_period, cfg.experiment_path),
                                NoRetry(cfg.max_failures), StorageWatch(CONFIG_FILE)]
    if isinstance(scheduler, ResumableASHA):
        out.append(RungKeeper(scheduler))
    if cfg.cpu_sharing == "threads":
        out.append(ThreadSharer(cfg.name, cfg.cpus_per_trial, cfg.num_samples))
    # Tune restores callback states by their index in this list: new ones go at the end.
    out.append(DriverStats(cfg.experiment_path))
    out += [SlimFinished(), *loggers()]   # bounded per-trial state and files (slim.py, loggers.py)
    out.append(DropStaleSnapshots())   # one set of snapshot files, however often resumed
    out.append(BestSoFar())   # the progress line's best val_acc (progress.py)
    if cfg.mlflow:   # last: a search without it restores the same indices
        out.append(mlflow_trials(cfg))
    return out


def ray_storage(path: str) -> dict[str, Any]:
    """Where Ray writes, as RunConfig's storage_path (and storage_filesystem for a URI, resolved
    by core.storage.filesystem, so a scheme registered there reaches Ray too)."""
    if not is_uri(path):
        return {"storage_path": path}
    fs, fs_path = filesystem(path)
    return {"storage_path": fs_path, "storage_filesystem": fs}


def _tuner(cfg: SearchConfig, warm: WarmStart | None = None) -> tune.Tuner:
    scheduler = make_scheduler(cfg)
    restart = cfg.cpu_sharing == "restart"
    slots = trial_slots(cfg)
    return tune.Tuner(
        make_trainable(cfg),
        tune_config=TuneConfig(
            search_alg=make_searcher(cfg, slots, warm), metric=METRIC, mode=MODE,
            # --cpu-sharing restart: Ray's ResourceChangingScheduler hands idle CPUs to running
            # trials by restarting them from their last checkpoint with more (ASHA decides).
            scheduler=ResourceChangingScheduler(
                base_scheduler=scheduler,
                resources_allocation_function=DistributeResources(add_bundles=False))
            if restart else scheduler,
            num_samples=cfg.num_samples or -1,   # -1: no cap, the time budget ends the search
            trial_dirname_creator=trial_dirname,
            # A finished trial's worker runs the next one: saves a process start (seconds on
            # a small machine) per trial. All trials ask for the same resources. Ray's
            # ResourceChangingScheduler cannot work with reused actors.
            reuse_actors=not restart,
        ),
        run_config=RunConfig(
            name=cfg.name,
            **ray_storage(cfg.storage_root),
            # No num_to_keep: with it Ray forces a snapshot every num_to_keep checkpoints of a
            # trial. The CheckpointKeeper keeps a running trial's newest two (retention.py).
            checkpoint_config=CheckpointConfig(num_to_keep=None),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            callbacks=callbacks(cfg, scheduler),
            stop=SnapshotClock(),   # stops nothing: times the snapshots (stats.py)
            progress_reporter=trial_table(cfg, slots),
            verbose=1,
        ),
    )


@dataclass(frozen=True)
class SearchOutcome:
    experiment_path: str
    best: Best | None                    # the highest val_acc any trial reported
    num_trials: int
    num_errors: int
    unfinished: int = 0                  # trials not finished + trials not started (Ctrl-C)
    budget_s: float = 0.0                # the time budget of this run (0: none)
    budget_ended: bool = False           # the budget ended this run (not Ctrl-C)
    wall_s: float = 0.0                  # this run, from start to the end of the summary
    errors: tuple[tuple[str, int], ...] = ()   # (one-line error, trials), most common first
    warnings: tuple[str, ...] = ()             # "trial <id>: <what>", e.g. a checkpoint fallback

    @property
    def all_failed(self) -> bool:
        """Every trial errored (and none is left to run): the search failed."""
        return self.num_trials > 0 and self.num_errors == self.num_trials and not self.unfinished


def trial_problems(trials) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    """(errors counted by their one-line message, warnings per trial) of a trials table."""
    if not len(trials):
        return (), ()
    errors = tuple(error_counts(trials["error"]))
    warnings = tuple(f"trial {t}: {w}"
                     for t, w in zip(trials["trial_id"], trials["warning"], strict=True) if w)
    return errors, warnings


def outcome_of(cfg: SearchConfig, budget: Budget) -> SearchOutcome:
    """What the search's folder holds now; writes best.json beside it."""
    try:
        exp = load_experiment(cfg.experiment_path)
    except ValueError:
        return SearchOutcome(cfg.experiment_path, None, 0, 0, cfg.num_samples)
    trials = exp.trials
    statuses = [TrialStatus(s) for s in trials["status"]] if len(trials) else []
    best = best_reported(trials, exp.history, exp.param_names)
    # With a budget and no cap, trials never started are not "to go": the budget decides.
    not_started = max(0, cfg.num_samples - len(trials)) if cfg.num_samples else 0
    if budget.ended:   # the budget, not the cap, decided how many trials ran
        not_started = 0
    unfinished = not_started + sum(s.unfinished for s in statuses)
    write_text(cfg.experiment_path, BEST_FILE,
               json.dumps(None if best is None else best.to_json(), indent=2))
    return SearchOutcome(cfg.experiment_path, best, len(trials),
                         sum(s is TrialStatus.ERRORED for s in statuses), unfinished,
                         budget.total_s, budget.ended, time.monotonic() - budget.started,
                         *trial_problems(trials))


def fit(tuner: tune.Tuner) -> None:
    """Tuner.fit, with a StorageLostError raised from a callback passed on as itself."""
    try:
        tuner.fit()
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, StorageLostError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None


def _prepare(cfg: SearchConfig) -> SearchConfig:
    """Checks and Ray's start; returns cfg with --gpus-per-trial auto measured (core.packing)."""
    # Frequent experiment snapshots: a killed driver loses at most a few seconds of bookkeeping.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The classic reporter: one compact live table, not a box per trial event.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    cfg, note = resolve_gpus_per_trial(cfg)   # before Ray (and its workers) hold the GPU
    if note:
        print(note, file=sys.stderr)
    # A trial's checkpoint records in Ray's snapshot hold no copy of its metrics (slim.py).
    os.environ.setdefault("TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE", "1")
    # Refuse bad data and unwritable folders before Ray starts. It builds the data cache once
    # here, so trials on this node start from it; on a cluster, Ray tasks build it on all nodes.
    preflight(cfg, decode=not cfg.address)
    init_ray(cfg)
    check_cluster(cfg)
    if cfg.address:
        check_data(build_cache(cfg.data), cfg.data.resolved())
    return cfg


def _plan(cfg: SearchConfig) -> str:
    trials = f"{cfg.num_samples} trials" if cfg.num_samples else "trials"
    budget = f" within {format_duration(cfg.time_budget_s)}" if cfg.time_budget_s else ""
    return f"{trials}{budget} of space {cfg.space_label!r}, up to {cfg.max_epochs} epochs each"


def run_search(cfg: SearchConfig) -> SearchOutcome:
    """A new search. The time budget, if any, counts from here (Ray's start included).
    The search's lease is held from before Ray starts until its summary is written."""
    budget = Budget(cfg.time_budget_s)
    cfg = cfg.resolved()
    check_results_writable(cfg)   # its own message, before the lease is written there
    with Lease(cfg.experiment_path, "vidtune search"):   # a live driver there: LeaseHeld
        if read_text(cfg.experiment_path, CONFIG_FILE) is not None:   # a path or a URI
            raise ValueError(f"{cfg.experiment_path} already holds a search; resume it with "
                             f"`vidtune resume {cfg.experiment_path}` or choose another --name")
        warm = load_warm_start(cfg)   # before Ray starts: a folder that is not a search is an error
        if cfg.mlflow:
            check_tracking_uri(cfg.mlflow)
        cfg = _prepare(cfg)
        write_text(cfg.experiment_path, CONFIG_FILE, json.dumps(cfg.to_json(), indent=2))
        print(f"search {cfg.name}: {_plan(cfg)} -> {cfg.experiment_path}", file=sys.stderr)
        for note in warm.notes:
            print(note, file=sys.stderr)
        return _fit(cfg, budget, lambda: _tuner(cfg, warm))


def run_repeats(cfg: SearchConfig, params: dict[str, Any]) -> SearchOutcome:
    """cfg.num_samples trials that all train `params`: no searcher, no early stopping.

    For measurements that must vary one thing only, e.g. the benchmark's packed trials
    against one trial alone. The folder is a results folder like any other (vidtune.json,
    trial_<id>/), so load_experiment reads it.
    """
    cfg = cfg.resolved()
    cfg = _prepare(cfg)
    write_text(cfg.experiment_path, CONFIG_FILE, json.dumps(cfg.to_json(), indent=2))
    tune.Tuner(
        make_trainable(cfg), param_space=dict(params),
        tune_config=TuneConfig(num_samples=cfg.num_samples, trial_dirname_creator=trial_dirname),
        run_config=RunConfig(name=cfg.name, storage_path=cfg.storage_root, verbose=0),
    ).fit()
    return outcome_of(cfg, Budget(0.0))


def budget_spent(path: str) -> tuple[float, float]:
    """(total_s, spent_s) that budget.jsonl of a search records; (0, 0) without a budget."""
    text = read_text(path, BUDGET_FILE)
    if text is None:
        return 0.0, 0.0
    d = json.loads(text)
    return float(d.get("total_s", 0.0)), float(d.get("spent_s", 0.0))


def resume_search(path: str, address: str = "", time_budget_s: float | None = None) -> SearchOutcome:
    """Continue an interrupted search: finished trials kept, running ones from their checkpoints.

    With a time budget, the search goes on for what is left of it; time_budget_s gives it a
    new one instead (counted from now).
    """
    cfg = SearchConfig.load(path)
    if address:
        cfg = replace(cfg, address=address, num_cpus=0, num_gpus=-1)
    with Lease(cfg.experiment_path, "vidtune resume"):   # a live driver there: LeaseHeld
        return _resume(cfg, path, time_budget_s)


def _resume(cfg: SearchConfig, path: str, time_budget_s: float | None) -> SearchOutcome:
    where = ray_storage(cfg.experiment_path)
    path_on_fs, fs = where["storage_path"], where.get("storage_filesystem")
    if not tune.Tuner.can_restore(path_on_fs, storage_filesystem=fs):
        raise ValueError(f"{path} has no Ray Tune experiment state to resume from "
                         "(was the search killed before its first trial started?)")
    # A damaged file: one line naming it and the fix; optuna.db is rebuilt (resume_files.py).
    for note in check_resume_files(cfg.experiment_path, budget=time_budget_s is None,
                                   optuna_in_folder=not cfg.optuna_storage):
        print(note, file=sys.stderr)
    if time_budget_s is not None:
        if time_budget_s <= 0:
            raise ValueError(f"time budget is {time_budget_s}, but must be > 0, e.g. 10m")
        cfg = replace(cfg, time_budget_s=time_budget_s)
        budget = Budget(time_budget_s)
    else:
        total, spent = budget_spent(cfg.experiment_path)
        budget = Budget(cfg.time_budget_s, spent if total == cfg.time_budget_s else 0.0)
        if cfg.time_budget_s and budget.left() <= 0:
            raise ValueError(f"the time budget of {format_duration(cfg.time_budget_s)} of {path} "
                             f"is spent; give a new one: vidtune resume {path} --time-budget 10m")
    cfg.search_space()   # a space file moved or changed since the search started: an error
    if cfg.mlflow:
        check_tracking_uri(cfg.mlflow)
    cfg = _prepare(cfg)
    left = f", {format_duration(budget.left())} of its time budget left" if cfg.time_budget_s else ""
    print(f"resuming {cfg.name} from {cfg.experiment_path}{left}", file=sys.stderr)
    # Errored trials stay failed (resume_errored=False): a deterministic error would fail
    # again, and a transient one has used its --max-failures retries. So the Optuna mirror's
    # FAIL row, the searcher's FAIL and trials.csv's "errored" stay true without a rerun.
    return _fit(cfg, budget, lambda: tune.Tuner.restore(
        path_on_fs, trainable=make_trainable(cfg), storage_filesystem=fs,
        resume_unfinished=True, resume_errored=False))


def _fit(cfg: SearchConfig, budget: Budget, tuner: Callable[[], tune.Tuner]) -> SearchOutcome:
    quiet_ray_hints()   # Ray's Tuner.restore hint and missing-metrics warnings (quiet.py)
    set_current(budget)
    try:
        fit(tuner())
    finally:
        set_current(None)
    outcome = outcome_of(cfg, budget)
    if cfg.mlflow:
        finish_tracking(cfg, outcome)
    return outcome
