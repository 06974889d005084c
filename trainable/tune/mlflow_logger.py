"""--mlflow: the search's trials as MLflow runs, written by a Tune logger callback on the driver.

Why not Ray's MLflowLoggerCallback (ray.air.integrations.mlflow): it fits a search that is
never resumed, and vidtune's are.
- Its trial -> run map lives in memory only and setup() empties it, so a resumed driver opens
  a second run for every trial it continues (a duplicate per resume).
- It logs at step=training_iteration, which counts reports, not epochs; a trial that reports
  its last epoch again after a kill (core.trial.run_trial) would log it twice.
- It logs every key of every result as a metric (timestamps, node ids), has no parent run,
  and ends a run only FINISHED or FAILED, with no word on why (ASHA, an error).
So this callback keeps Ray's shape (a LoggerCallback: start, result, end) and finds its runs
by their tags in MLflow (core.tracking) instead of remembering them:
- a trial's run is looked up by its trial id under the search's run, created only if absent;
- a continued trial's epochs already in MLflow are not logged again, and the epochs it lacks
  (reported to a driver that was killed before it logged them) are filled in from the trial's
  progress.csv and its checkpoints' metrics.json, so the steps run 1, 2, ... with no
  duplicates and no gaps;
- at a driver's first step, trials that finished while no driver logged them are ended, and
  runs of trials Ray has forgotten (started after its last snapshot) are ended KILLED, "lost".
MLflow must never stop a search: a failed call is a warning, and the next event tries again.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any

from ray.tune.logger import LoggerCallback

from vidtune.trainable.core import tracking
from vidtune.trainable.core.checkpoint import METRICS
from vidtune.trainable.core.failures import last_error_line
from vidtune.trainable.core.results import TrialStatus, classify

logger = logging.getLogger(__name__)

LOST = "lost: started after Ray's last snapshot of a killed driver, so never resumed"


def rung_of(epoch: int, grace_period: int, reduction_factor: float) -> int:
    """ASHA's rung (1: the first, at grace_period epochs) a trial stopped at after `epoch`."""
    k, milestone = 1, float(grace_period)
    while milestone * reduction_factor <= epoch + 1e-9:
        milestone *= reduction_factor
        k += 1
    return k


def status_text(status: TrialStatus, epoch: int, grace_period: int, reduction_factor: float,
                error: str = "") -> str:
    """The run's vidtune.status tag: 'completed', 'stopped by ASHA at rung 2 (epoch 3)', ..."""
    if status is TrialStatus.STOPPED:
        return f"stopped by ASHA at rung {rung_of(epoch, grace_period, reduction_factor)} (epoch {epoch})"
    if status is TrialStatus.ERRORED:
        return f"errored: {error or 'unknown error'}"
    return status.value


RUN_STATUS = {TrialStatus.COMPLETED: "FINISHED", TrialStatus.STOPPED: "FINISHED",
              TrialStatus.DIVERGED: "FAILED", TrialStatus.ERRORED: "FAILED"}


class MlflowTrials(LoggerCallback):
    """One MLflow child run per trial under the search's run (core.tracking opens that)."""

    def __init__(self, uri: str, experiment: str, name: str, experiment_path: str,
                 config: dict[str, Any], space: dict[str, Any], max_epochs: int,
                 grace_period: int, reduction_factor: float) -> None:
        self.uri, self.experiment, self.name = uri, experiment, name
        self.experiment_path, self.config, self.space = experiment_path, config, space
        self.max_epochs, self.grace_period, self.reduction_factor = max_epochs, grace_period, reduction_factor
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self._exp_id = self._parent = ""
        self._runs: dict[str, str] = {}        # trial id -> run id
        self._steps: dict[str, set[int]] = {}  # trial id -> epochs logged
        self._shared: set[str] = set()         # trials whose gpu_share is logged
        self._reconciled = False

    # Tune pickles callbacks with the experiment: the client and the maps stay here.
    def __getstate__(self) -> dict[str, Any]:
        keep = ("uri", "experiment", "name", "experiment_path", "config", "space", "max_epochs",
                "grace_period", "reduction_factor")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def _open(self) -> Any:
        if self._client is None:
            self._exp_id, self._parent = tracking.open_search_run(
                self.uri, self.experiment, self.name, self.experiment_path, self.config, self.space)
            c = tracking.client(self.uri)
            for run in tracking.find_runs(c, self._exp_id, **{tracking.PARENT: self._parent,
                                                              tracking.ROLE: "trial"}):
                self._runs.setdefault(run.data.tags[tracking.TRIAL], run.info.run_id)
            self._client = c
        return self._client

    def _safely(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - MLflow must never stop the search
            logger.warning("MLflow (%s): could not %s: %s", self.uri, what, exc)

    # Tune's hooks -------------------------------------------------------------------------
    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._safely("open the search's run", self._open)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._reconciled and trials:
            self._reconciled = True
            self._safely("reconcile the trial runs", self.reconcile, trials)

    def log_trial_start(self, trial: Any) -> None:
        self._safely(f"start trial {trial.trial_id}'s run", self._start, trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        self._safely(f"log trial {trial.trial_id}'s epoch", self._result, trial, result)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._safely(f"end trial {trial.trial_id}'s run", self._end, trial, failed)

    # What they do -------------------------------------------------------------------------
    def reconcile(self, trials: list) -> None:
        """A driver's first step: end the runs of trials that finished unlogged, and of trials
        Ray no longer has."""
        c = self._open()
        ids = {t.trial_id for t in trials}
        for trial_id, run_id in self._runs.items():
            if trial_id not in ids and c.get_run(run_id).info.status == "RUNNING":
                c.set_tag(run_id, tracking.STATUS, LOST)
                c.set_terminated(run_id, status="KILLED")
        for t in trials:
            if t.status in ("TERMINATED", "ERROR"):
                run_id = self._run(t)
                if c.get_run(run_id).info.status == "RUNNING":
                    self._end(t, t.status == "ERROR")

    def _run(self, trial: Any) -> str:
        """The trial's run: found, or created with its params; its missing epochs filled in."""
        from mlflow.entities import Param

        c = self._open()
        run_id = self._runs.get(trial.trial_id)
        if run_id is None:
            run = c.create_run(self._exp_id, run_name=f"trial_{trial.trial_id}",
                               tags={tracking.PARENT: self._parent, tracking.ROLE: "trial",
                                     tracking.TRIAL: trial.trial_id,
                                     tracking.PATH: self.experiment_path,
                                     tracking.STATUS: TrialStatus.RUNNING.value})
            run_id = self._runs[trial.trial_id] = run.info.run_id
            c.log_batch(run_id, params=[Param(k, v) for k, v in tracking._params(trial.config).items()])
            self._steps[trial.trial_id] = set()
        if trial.trial_id not in self._steps:   # a run from an earlier driver: what it has
            self._steps[trial.trial_id] = {int(m.step) for m in c.get_metric_history(run_id, "val_acc")}
            self._fill(trial, run_id)
        return run_id

    def _fill(self, trial: Any, run_id: str) -> None:
        """Log the epochs the trial's run lacks: from its progress.csv, and from its checkpoints'
        metrics.json. The second covers a driver killed after the trial saved an epoch's
        checkpoint but before the driver took in that epoch's report: the resumed trial goes
        on from that checkpoint and never reports the epoch again (nor has progress.csv it)."""
        folder = Path(trial.path) if getattr(trial, "path", None) else None
        if folder is None or not folder.is_dir():
            return
        path = folder / "progress.csv"
        if path.is_file():
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    self._log_epoch(trial, run_id, row)
        for saved in sorted(folder.glob(f"checkpoint_*/{METRICS}")):
            try:
                self._log_epoch(trial, run_id, json.loads(saved.read_text()))
            except (OSError, ValueError):   # being deleted, or half-written: not an epoch
                continue

    def _log_epoch(self, trial: Any, run_id: str, result: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        try:
            epoch = int(float(result["epoch"]))
        except (KeyError, TypeError, ValueError):
            return   # an error report: no epoch
        steps = self._steps.setdefault(trial.trial_id, set())
        if epoch in steps:
            return
        stamp = int(float(result.get("reported_at") or time.time()) * 1000)
        metrics = []
        for key in tracking.EPOCH_METRICS:
            try:
                value = float(result[key])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(value):
                metrics.append(Metric(key, value, stamp, epoch))
        self._open().log_batch(run_id, metrics=metrics)
        steps.add(epoch)

    def _start(self, trial: Any) -> None:
        run_id = self._run(trial)
        c = self._open()
        if c.get_run(run_id).info.status != "RUNNING":   # a trial Ray runs again (resume, retry)
            c.update_run(run_id, status="RUNNING")
            c.set_tag(run_id, tracking.STATUS, TrialStatus.RUNNING.value)

    def _result(self, trial: Any, result: dict) -> None:
        run_id = self._run(trial)
        if trial.trial_id not in self._shared and "gpu_share" in result:
            self._shared.add(trial.trial_id)
            c = self._open()
            if "gpu_share" not in c.get_run(run_id).data.params:
                c.log_param(run_id, "gpu_share", result["gpu_share"])
        self._log_epoch(trial, run_id, result)

    def _end(self, trial: Any, failed: bool) -> None:
        run_id = self._run(trial)
        c = self._open()
        last = dict(trial.last_result or {})
        status = classify("ERROR" if failed else "TERMINATED", last, self.max_epochs)
        epochs = sorted(self._steps.get(trial.trial_id, ()))
        epoch = epochs[-1] if epochs else int(last.get("epoch") or 0)
        text = status_text(status, epoch, self.grace_period, self.reduction_factor,
                           self._error(trial, last) if status is TrialStatus.ERRORED else "")
        c.set_tag(run_id, tracking.STATUS, text)
        history = c.get_metric_history(run_id, "epoch_time_s")
        if history:   # what an epoch of this config costs: the median, as trials.csv has it
            c.log_metric(run_id, "s_per_epoch", statistics.median(m.value for m in history))
        c.log_metric(run_id, "epochs", epoch)
        c.set_terminated(run_id, status=RUN_STATUS.get(status, "FINISHED"))

    @staticmethod
    def _error(trial: Any, last: dict[str, Any]) -> str:
        """The error in one line: the one the trial reported (adapter), else Ray's error.txt."""
        if last.get("error"):
            return str(last["error"])
        for folder in (getattr(trial, "path", None), getattr(trial, "local_path", None)):
            path = Path(folder) / "error.txt" if folder else None
            if path is not None and path.is_file():
                return last_error_line(path.read_text(errors="replace"))
        return ""


def mlflow_trials(cfg: Any) -> MlflowTrials:
    """The callback for a search config (cfg.mlflow set): its run holds the config and space."""
    from optuna.distributions import distribution_to_json

    from vidtune.search_spaces import space_distributions

    space = {k: json.loads(distribution_to_json(d)) for k, d in space_distributions(cfg.space).items()}
    return MlflowTrials(cfg.mlflow, cfg.mlflow_experiment, cfg.name, cfg.experiment_path,
                        cfg.to_json(), {"space": cfg.space_label, "distributions": space},
                        cfg.max_epochs, cfg.grace_period, cfg.reduction_factor)


def finish_tracking(cfg: Any, outcome: Any) -> None:
    """The search's run at the end of a driver: the best so far and the counts (a warning, not
    an error, if MLflow fails now: the search's results are safe in its folder)."""
    try:
        tracking.finish_search_run(
            cfg.mlflow, cfg.mlflow_experiment, cfg.experiment_path,
            best=None if outcome.best is None else outcome.best.to_json(),
            num_trials=outcome.num_trials, num_errors=outcome.num_errors,
            interrupted=bool(outcome.unfinished) and not outcome.budget_ended)
    except Exception as exc:  # noqa: BLE001
        logger.warning("MLflow (%s): could not record the search's end: %s", cfg.mlflow, exc)
