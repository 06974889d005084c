"""ASHA whose rung records survive a resume.

Ray does not restore a scheduler's state with Tuner.restore (ray-project/ray#30838): a resumed
ASHA starts with empty rungs and lets weak trials through that the original run would have
stopped. RungKeeper is a Tune Callback that holds the scheduler; Ray saves callback state
with every experiment checkpoint (together with the trial states, so the two agree) and
sets it back before restored trials are re-queued.

Ray's ASHA lets a trial through a rung when its value is at or above the (1 - 1/rf) quantile
of the values recorded there so far. With a sampler that improves as it learns (TPE), later
trials clear that bar far more often than 1 in rf, so the epochs spent drift above ASHA's
design (measured in docs/benchmarks.md: about 0.5 of a full-budget search, where rf 3 with
grace 1 and 6 epochs is designed for 1/3). With `promotion_cap=True` a rung lets through at
most max(1, floor(n / rf)) of the n trials recorded at it: a hard budget, at a cost in best
accuracy that the same benchmark measures.

Cost in view (`cost_factor` > 0, `--asha-cost-factor`): a trial whose seconds per epoch are
more than cost_factor times the median of the other trials recorded at its rung continues
only if it leads that rung. A slow config then runs on only when it is the best one seen,
instead of holding a slot for minutes while cheaper configs reach the same accuracy.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import pyarrow.fs
from ray.tune import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler

logger = logging.getLogger(__name__)

DECISIONS_FILE = "asha_decisions.jsonl"


def too_slow(value: float, seconds: float, others: list[tuple[float, float]],
             cost_factor: float) -> bool:
    """Stop a trial the quantile let through? Only if it is slow and does not lead its rung.

    value, seconds: its rung value (larger is better) and its seconds per epoch; others: the
    (value, seconds) of the trials recorded at the rung before it. Trials of unknown cost
    (seconds NaN) count as neither slow nor fast.
    """
    known = sorted(s for _, s in others if s == s)
    if cost_factor <= 0 or not known or seconds != seconds:
        return False
    median = known[len(known) // 2] if len(known) % 2 else (known[len(known) // 2 - 1] + known[len(known) // 2]) / 2
    return seconds > cost_factor * median and value <= max(v for v, _ in others)


def append_line(fs: Any, path: str, line: str) -> None:
    """Append one line to a file on a pyarrow filesystem. Object stores cannot append
    (S3 raises NotImplementedError): there the file is read and written back whole."""
    data = (line + "\n").encode()
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        with open(path, "ab") as f:
            f.write(data)
        return
    try:
        with fs.open_append_stream(path) as f:
            f.write(data)
    except NotImplementedError:
        try:
            with fs.open_input_stream(path) as f:
                data = f.read() + data
        except FileNotFoundError:
            pass
        with fs.open_output_stream(path) as f:
            f.write(data)


class ResumableASHA(AsyncHyperBandScheduler):
    """ASHA with a single bracket whose rungs can be exported and restored.

    Every rung record is also appended to asha_decisions.jsonl in the experiment folder (a
    path or a storage URI): trial, milestone, value, the cutoff it was compared against, and
    the action taken.
    """

    decisions_fs: Any = None   # class defaults: schedulers pickled before these existed resume too
    cost_factor: float = 0.0

    def __init__(self, *, time_attr: str, max_t: int, grace_period: int, reduction_factor: float,
                 promotion_cap: bool = False, cost_factor: float = 0.0) -> None:
        super().__init__(time_attr=time_attr, max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=1)
        self.decisions_path: str | None = None   # on decisions_fs (pyarrow), set by on_trial_add
        self.promotion_cap = promotion_cap
        self.cost_factor = cost_factor
        self.costs: dict[str, float] = {}   # trial_id -> seconds per epoch, at its last result
        # milestone -> the trials let through that rung, in order
        self.promoted: dict[float, list[str]] = {float(m): [] for m, _ in self._brackets[0]._rungs}

    def cap(self, rung_size: int) -> int:
        """Trials that may have passed a rung holding rung_size records (promotion_cap only)."""
        return max(1, int(rung_size // self._brackets[0].rf))

    # -- state -------------------------------------------------------------------------
    def rung_state(self) -> list[list[Any]]:
        """[[milestone, {trial_id: value}, [promoted trial_id, ...]], ...] of the single bracket."""
        return [[milestone, dict(recorded), list(self.promoted[float(milestone)])]
                for milestone, recorded in self._brackets[0]._rungs]

    def load_rung_state(self, rungs: list[list[Any]]) -> None:
        saved = {float(rung[0]): rung[1:] for rung in rungs}
        for milestone, recorded in self._brackets[0]._rungs:
            values, *promoted = saved.get(float(milestone), ({},))
            recorded.clear()
            recorded.update(values)
            self.promoted[float(milestone)] = list(promoted[0]) if promoted else []

    # -- deciding ----------------------------------------------------------------------
    def _rungs_holding(self, trial_id: str) -> set[float]:
        return {float(m) for m, recorded in self._brackets[0]._rungs if trial_id in recorded}

    def _new_record(self, trial_id: str, before: set[float]) -> tuple[float, dict[str, float]] | None:
        """(milestone, its rung's records) if this result was just recorded at a rung."""
        for milestone, recorded in self._brackets[0]._rungs:
            if trial_id in recorded and float(milestone) not in before:
                return float(milestone), recorded
        return None

    # -- recording ---------------------------------------------------------------------
    def _record(self, trial_id: str, new: tuple[float, dict[str, float]] | None, action: str) -> None:
        if self.decisions_path is None or new is None:
            return
        milestone, recorded = new
        old = {t: v for t, v in recorded.items() if t != trial_id}   # the rung it was compared with
        cutoff = self._brackets[0].cutoff(old)
        sign = float(self._metric_op or 1.0)   # Ray stores max-mode values as is, min-mode negated
        line = {"trial_id": trial_id, "milestone": milestone,
                "value": sign * recorded[trial_id],
                "cutoff": None if cutoff is None else sign * float(cutoff),  # type: ignore[arg-type]
                "rung_size": len(old), "action": action, "driver_pid": os.getpid()}
        try:
            append_line(self.decisions_fs, self.decisions_path, json.dumps(line))
        except OSError as exc:
            logger.warning("could not record ASHA decision: %s", exc)

    def choose_trial_to_run(self, tune_controller) -> Any:
        """FIFOScheduler's choice, the first PENDING trial in Tune's list, else the first
        PAUSED one, read from Tune's own per-status sets: FIFOScheduler scans every trial so
        far twice at every step of the driver, which grows with the search (bench_scale). With
        more than one candidate (or another Tune), the scan decides the order."""
        controller = getattr(tune_controller, "_tune_controller", tune_controller)   # Tune wraps it
        pending = getattr(controller, "_pending_trials", None)
        paused = getattr(controller, "_paused_trials", None)
        if isinstance(pending, set) and isinstance(paused, set) and len(pending) + len(paused) <= 1:
            return next(iter(pending or paused), None)
        return super().choose_trial_to_run(tune_controller)

    def on_trial_add(self, tune_controller, trial) -> None:
        if self.decisions_path is None:
            # Ray's own filesystem and path of the experiment folder: a local path, or a path
            # on the storage URI's filesystem (trial.remote_experiment_path drops the scheme).
            self.decisions_fs = trial.storage.storage_filesystem
            self.decisions_path = f"{trial.storage.experiment_fs_path}/{DECISIONS_FILE}"
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        before = self._rungs_holding(trial.trial_id)
        costs = self.__dict__.setdefault("costs", {})   # absent in schedulers pickled before it
        if result.get("epoch") and result.get("time_total_s"):
            costs[trial.trial_id] = float(result["time_total_s"]) / float(result["epoch"])
        action = super().on_trial_result(tune_controller, trial, result)
        new = self._new_record(trial.trial_id, before)
        if new is not None and action == self.CONTINUE:
            milestone, recorded = new
            promoted = self.promoted[milestone]
            others = [(v, costs.get(t, math.nan)) for t, v in recorded.items() if t != trial.trial_id]
            if self.promotion_cap and len(promoted) >= self.cap(len(recorded)):
                action = self.STOP
            elif too_slow(recorded[trial.trial_id], costs.get(trial.trial_id, math.nan), others,
                          self.cost_factor):
                action = self.STOP
            else:
                promoted.append(trial.trial_id)
        self._record(trial.trial_id, new, action)
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        before = self._rungs_holding(trial.trial_id)
        super().on_trial_complete(tune_controller, trial, result)
        self._record(trial.trial_id, self._new_record(trial.trial_id, before), "COMPLETE")


class RungKeeper(Callback):
    """Saves and restores a ResumableASHA's rungs with Tune's experiment checkpoints."""

    def __init__(self, scheduler: ResumableASHA) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict | None:
        return {"rungs": self.scheduler.rung_state(),
                "costs": dict(self.scheduler.__dict__.get("costs", {}))}

    def set_state(self, state: dict) -> None:
        self.scheduler.load_rung_state(state["rungs"])
        self.scheduler.costs = dict(state.get("costs", {}))
        n = sum(len(rung[1]) for rung in state["rungs"])
        logger.info("restored %d ASHA rung records", n)
