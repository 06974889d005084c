"""The search driver: Optuna TPE proposes, Ray Tune runs trials, ASHA stops weak ones.

run_search() starts a new experiment; resume_search() continues one after Ctrl-C, a killed
driver or a lost machine. Both return the ResultGrid and print the best trial.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune import CheckpointConfig, CLIReporter, FailureConfig, RunConfig, TuneConfig
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from vidtune.search_spaces import get_space, space_distributions
from vidtune.trainable.core.failures import error_counts
from vidtune.trainable.core.preflight import preflight
from vidtune.trainable.core.search_config import (
    CONFIG_FILE,
    SearchConfig,
    filesystem,
    is_uri,
    read_text,
    write_text,
)
from vidtune.trainable.core.trials import Best, TrialStatus, best_reported
from vidtune.trainable.tune.adapter import tune_trainable
from vidtune.trainable.tune.asha import ResumableASHA, RungKeeper
from vidtune.trainable.tune.experiment import load_experiment
from vidtune.trainable.tune.failures import NoRetry, StorageLostError, StorageWatch
from vidtune.trainable.tune.optuna_mirror import OptunaMirror

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
    return max(1, min(slots, cfg.num_samples))


def make_searcher(cfg: SearchConfig, slots: int) -> ConcurrencyLimiter:
    """Seeded TPE over the named space, the seed default first.

    The ConcurrencyLimiter matters twice: TPE proposes only as many configs as can run (later
    ones learn from earlier results), and Tune starts `slots` trials at once instead of one
    at a time (it keeps a single pending trial for an unwrapped custom searcher).
    """
    space = get_space(cfg.space)
    if cfg.sampler == "random":   # the baseline the benchmarks compare TPE against
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=cfg.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=max(2, min(10, cfg.num_samples // 3)))
    searcher = OptunaSearch(space=space.define, metric=METRIC, mode=MODE, sampler=sampler,
                            points_to_evaluate=[dict(space.default)])
    return ConcurrencyLimiter(searcher, max_concurrent=slots)


def make_scheduler(cfg: SearchConfig) -> ResumableASHA | FIFOScheduler:
    if cfg.scheduler == "none":   # no early stopping: every trial trains max_epochs
        return FIFOScheduler()
    return ResumableASHA(time_attr="epoch", max_t=cfg.max_epochs, grace_period=cfg.grace_period,
                         reduction_factor=cfg.reduction_factor, promotion_cap=cfg.promotion_cap)


def init_ray(cfg: SearchConfig) -> None:
    """Join the cluster at cfg.address, or start an embedded local Ray (never a stray cluster)."""
    if ray.is_initialized():
        return
    if cfg.address:
        ray.init(address=cfg.address, log_to_driver=False)
        return
    kwargs: dict[str, Any] = {"address": "local", "include_dashboard": False, "log_to_driver": False}
    if cfg.num_cpus:
        kwargs["num_cpus"] = cfg.num_cpus
    if cfg.num_gpus >= 0:
        kwargs["num_gpus"] = cfg.num_gpus
    ray.init(**kwargs)


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


def trial_table(cfg: SearchConfig) -> CLIReporter:
    """The live trial table: sampled parameters, the latest epoch's metrics, every 15 s."""
    params = list(space_distributions(cfg.space))
    return CLIReporter(
        parameter_columns=params,
        metric_columns={"epoch": "epoch", "train_loss": "train_loss", "val_loss": "val_loss",
                        "val_acc": "val_acc"},
        max_report_frequency=15, sort_by_metric=True,
    )


def ray_storage(path: str) -> dict[str, Any]:
    """Where Ray writes, as RunConfig's storage_path (and storage_filesystem for a URI, resolved
    by core.search_config.filesystem, so a scheme registered there reaches Ray too)."""
    if not is_uri(path):
        return {"storage_path": path}
    fs, fs_path = filesystem(path)
    return {"storage_path": fs_path, "storage_filesystem": fs}


def _tuner(cfg: SearchConfig) -> tune.Tuner:
    scheduler = make_scheduler(cfg)
    return tune.Tuner(
        make_trainable(cfg),
        tune_config=TuneConfig(
            search_alg=make_searcher(cfg, trial_slots(cfg)), scheduler=scheduler, metric=METRIC, mode=MODE,
            num_samples=cfg.num_samples, trial_dirname_creator=trial_dirname,
            # A finished trial's worker runs the next one: saves a process start (seconds on
            # a small machine) per trial. All trials ask for the same resources.
            reuse_actors=True,
        ),
        run_config=RunConfig(
            name=cfg.name,
            **ray_storage(cfg.storage_root),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            callbacks=[OptunaMirror(cfg.name, cfg.space, cfg.max_epochs, cfg.optuna_storage),
                       NoRetry(cfg.max_failures), StorageWatch(CONFIG_FILE),
                       *([RungKeeper(scheduler)] if isinstance(scheduler, ResumableASHA) else [])],
            progress_reporter=trial_table(cfg),
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


def outcome_of(cfg: SearchConfig) -> SearchOutcome:
    """What the search's folder holds now; writes best.json beside it."""
    try:
        exp = load_experiment(cfg.experiment_path)
    except ValueError:
        return SearchOutcome(cfg.experiment_path, None, 0, 0, cfg.num_samples)
    trials = exp.trials
    statuses = [TrialStatus(s) for s in trials["status"]] if len(trials) else []
    best = best_reported(trials, exp.history, exp.param_names)
    unfinished = cfg.num_samples - len(trials) + sum(s.unfinished for s in statuses)
    write_text(cfg.experiment_path, BEST_FILE,
               json.dumps(None if best is None else best.to_json(), indent=2))
    return SearchOutcome(cfg.experiment_path, best, len(trials),
                         sum(s is TrialStatus.ERRORED for s in statuses), unfinished,
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


def _prepare(cfg: SearchConfig) -> None:
    # Frequent experiment snapshots: a killed driver loses at most a few seconds of bookkeeping.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The classic reporter: one compact live table, not a box per trial event.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Refuse bad data and unwritable folders before Ray starts. It builds the data cache once
    # here, so trials on this node start from it.
    preflight(cfg)
    init_ray(cfg)
    check_cluster(cfg)


def run_search(cfg: SearchConfig) -> SearchOutcome:
    cfg = cfg.resolved()
    if read_text(cfg.experiment_path, CONFIG_FILE) is not None:   # a path or a URI
        raise ValueError(f"{cfg.experiment_path} already holds a search; resume it with "
                         f"`vidtune resume {cfg.experiment_path}` or choose another --name")
    _prepare(cfg)
    write_text(cfg.experiment_path, CONFIG_FILE, json.dumps(cfg.to_json(), indent=2))
    print(f"search {cfg.name}: {cfg.num_samples} trials of space {cfg.space!r}, "
          f"up to {cfg.max_epochs} epochs each -> {cfg.experiment_path}", file=sys.stderr)
    fit(_tuner(cfg))
    return outcome_of(cfg)


def resume_search(path: str, address: str = "") -> SearchOutcome:
    """Continue an interrupted search: finished trials kept, running ones from their checkpoints."""
    cfg = SearchConfig.load(path)
    if address:
        cfg = replace(cfg, address=address, num_cpus=0, num_gpus=-1)
    where = ray_storage(cfg.experiment_path)
    path_on_fs, fs = where["storage_path"], where.get("storage_filesystem")
    if not tune.Tuner.can_restore(path_on_fs, storage_filesystem=fs):
        raise ValueError(f"{path} has no Ray Tune experiment state to resume from "
                         "(was the search killed before its first trial started?)")
    _prepare(cfg)
    print(f"resuming {cfg.name} from {cfg.experiment_path}", file=sys.stderr)
    # Errored trials stay failed (resume_errored=False): a deterministic error would fail
    # again, and a transient one has used its --max-failures retries. So the Optuna mirror's
    # FAIL row, the searcher's FAIL and trials.csv's "errored" stay true without a rerun.
    tuner = tune.Tuner.restore(path_on_fs, trainable=make_trainable(cfg), storage_filesystem=fs,
                               resume_unfinished=True, resume_errored=False)
    fit(tuner)
    return outcome_of(cfg)
