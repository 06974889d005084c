"""One vocabulary for what became of a trial, and the two "best" rules (no Ray, pandas only).

TrialStatus is the only list of statuses; classify() is the only place that decides one.
The results tables (trials.csv), the Optuna mirror, the analysis and retrain all use them.

Best is the one record of a best trial: the search's best.json, the analysis summary and
retrain's pick. Two rules produce it from a trials table:
- best_reported: the highest val_acc any trial reported at any epoch (what a search found);
- best_trial: the retrain rule, the best *final* val_acc among the trials trained longest.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd


class TrialStatus(enum.StrEnum):
    """Listed in the order tables and plots show them. The value is what trials.csv holds."""

    COMPLETED = "completed"     # trained max_epochs
    STOPPED = "stopped"         # stopped early by ASHA at a rung
    DIVERGED = "diverged"       # NaN/inf loss: ended itself, val_acc 0
    ERRORED = "errored"         # raised, beyond its retries
    RUNNING = "running"         # the search is not over (or was interrupted while it ran)
    PENDING = "pending"         # created, no epoch reported yet

    @property
    def label(self) -> str:
        """Human wording, for reports and the live table."""
        return "stopped by ASHA" if self is TrialStatus.STOPPED else self.value

    @property
    def unfinished(self) -> bool:
        return self in (TrialStatus.RUNNING, TrialStatus.PENDING)

    @property
    def failed(self) -> bool:
        """Diverged and errored trials never count for the best configuration."""
        return self in (TrialStatus.DIVERGED, TrialStatus.ERRORED)


def classify(ray_status: str, last_result: Mapping[str, Any] | None, max_epochs: int) -> TrialStatus:
    """A trial's status from Ray Tune's status string and the trial's last reported result.

    Ray's experiment snapshot stores RUNNING trials as PENDING: a trial that has reported an
    epoch was running when the search was interrupted (or still is).
    """
    last = last_result or {}
    if ray_status == "ERROR":
        return TrialStatus.ERRORED
    if last.get("diverged"):
        return TrialStatus.DIVERGED
    epoch = int(last.get("epoch", 0) or 0)
    if ray_status == "TERMINATED":
        return TrialStatus.COMPLETED if epoch >= max_epochs else TrialStatus.STOPPED
    return TrialStatus.RUNNING if ray_status == "RUNNING" or epoch > 0 else TrialStatus.PENDING


def count_statuses(statuses: Iterable[str]) -> dict[TrialStatus, int]:
    """{status: number of trials} in TrialStatus order, statuses with no trial left out."""
    found = [TrialStatus(s) for s in statuses]
    return {s: found.count(s) for s in TrialStatus if s in found}


@dataclass(frozen=True)
class Best:
    """A best trial: its id, the val_acc it is judged by, at which epoch, its config."""

    trial_id: str
    val_acc: float
    epoch: int
    params: dict[str, Any] = field(default_factory=dict)
    status: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Best:
        return cls(str(d["trial_id"]), float(d["val_acc"]), int(d["epoch"]),
                   dict(d.get("params", {})), str(d.get("status", "")))


def to_native(value: Any) -> Any:
    """numpy/pandas scalars -> Python scalars (for JSON, Optuna and printing)."""
    return value.item() if hasattr(value, "item") else value


def trial_params(row: Mapping[str, Any], param_names: Iterable[str]) -> dict[str, Any]:
    """The sampled parameters of one trials row; NaN (not sampled by this trial) left out."""
    out = {}
    for name in param_names:
        value = to_native(row.get(name))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out[name] = value
    return out


def best_reported(trials: pd.DataFrame, history: pd.DataFrame,
                  param_names: Iterable[str]) -> Best | None:
    """The highest val_acc any trial reported at any epoch; None before any report.

    Diverged epochs report val_acc 0 and never win; a tie goes to the earlier report.
    """
    acc = pd.to_numeric(history["val_acc"], errors="coerce") if len(history) else pd.Series(dtype=float)
    if acc.notna().sum() == 0:
        return None
    row = history.loc[acc.idxmax()]
    trial = trials[trials["trial_id"] == row["trial_id"]]
    first = trial.iloc[0] if len(trial) else None
    return Best(str(row["trial_id"]), float(acc.max()), int(row["epoch"]),
                trial_params(first, param_names) if first is not None else {},
                str(first["status"]) if first is not None else "")


def best_trial(trials: pd.DataFrame, param_names: Iterable[str] = ()) -> Best:
    """The retrain rule: the best final val_acc among the trials that trained the most epochs.

    Trials stopped early by ASHA are compared only with each other if none went further;
    diverged and errored trials never count. Ties go to the earlier trial (column `order`).
    ValueError if no trial has finished an epoch.
    """
    usable = ~trials["status"].isin([s.value for s in TrialStatus if s.failed]) if len(trials) else []
    ok = trials[usable & (trials["epochs"] > 0)] if len(trials) else trials
    if ok.empty:
        raise ValueError("no trial finished an epoch yet: nothing to pick the best configuration from")
    top = ok[ok["epochs"] == ok["epochs"].max()]
    row = top.sort_values(["final_val_acc", "order"], ascending=[False, True], kind="stable").iloc[0]
    return Best(str(row["trial_id"]), float(row["final_val_acc"]), int(row["epochs"]),
                trial_params(row, param_names), str(row["status"]))
