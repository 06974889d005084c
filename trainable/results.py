"""A results folder (finished, interrupted or still running) as pandas tables, via Ray's
ExperimentAnalysis: no Ray cluster needed, no hand parsing of Ray's files.

trials:  one row per trial, in creation order: trial_id, order, status, the sampled
         parameters, best_val_acc, best_epoch, final_val_acc, epochs, time_s, start, end,
         and what it was given: device, gpu_share, gpu_cap_mb, gpu_name.
history: one row per reported epoch: trial_id, epoch, val_acc, val_loss, train_loss,
         time_total_s, timestamp.

status is one of: completed (ran max_epochs), stopped (by ASHA), diverged (NaN/inf loss),
errored (crashed beyond its retries), running / pending (the search is not over).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ray.tune import ExperimentAnalysis

from trainable.search_config import SearchConfig, is_uri

GRANT_COLUMNS = ["device", "gpu_share", "gpu_cap_mb", "gpu_name"]
HISTORY_COLUMNS = ["trial_id", "epoch", "val_acc", "val_loss", "train_loss", "time_total_s", "timestamp"]


@dataclass(frozen=True)
class Experiment:
    path: str
    config: SearchConfig
    trials: pd.DataFrame
    history: pd.DataFrame
    param_names: tuple[str, ...]


def _status(ray_status: str, last: dict, max_epochs: int) -> str:
    if ray_status == "ERROR":
        return "errored"
    if last.get("diverged"):
        return "diverged"
    if ray_status == "TERMINATED":
        return "completed" if last.get("epoch", 0) >= max_epochs else "stopped"
    # Ray's experiment snapshot stores RUNNING trials as PENDING: a trial that has reported
    # an epoch was running when the search was interrupted (or still is).
    return "running" if ray_status == "RUNNING" or last.get("epoch", 0) > 0 else "pending"


def load_experiment(path: str | Path) -> Experiment:
    """Load a results folder. ValueError naming the folder if it is not one."""
    from trainable.search import load_search_config

    path = str(path) if is_uri(str(path)) else str(Path(path).expanduser().resolve())
    config = load_search_config(path)
    try:
        analysis = ExperimentAnalysis(path)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise ValueError(f"{path} holds no Ray Tune experiment state yet ({exc})") from None
    frames = analysis.trial_dataframes
    rows, histories, params = [], [], []
    for order, trial in enumerate(analysis.trials):
        for key in trial.config:
            if key not in params:
                params.append(key)
        df = frames.get(trial.trial_id)
        if df is None or df.empty or "val_acc" not in df:
            df = pd.DataFrame(columns=HISTORY_COLUMNS)
        df = df.assign(trial_id=trial.trial_id)
        # A trial resumed from a checkpoint may report an epoch twice: keep the latest.
        df = df.drop_duplicates(subset=["epoch"], keep="last") if len(df) else df
        histories.append(df.reindex(columns=HISTORY_COLUMNS))
        last = dict(trial.last_result or {})
        valid = df[df.get("diverged", 0) == 0] if "diverged" in df and len(df) else df
        best_idx = valid["val_acc"].astype(float).idxmax() if len(valid) else None
        rows.append({
            "trial_id": trial.trial_id,
            "order": order,
            "status": _status(trial.status, last, config.max_epochs),
            **{k: v for k, v in trial.config.items()},
            "best_val_acc": float(valid.loc[best_idx, "val_acc"]) if best_idx is not None else math.nan,
            "best_epoch": int(valid.loc[best_idx, "epoch"]) if best_idx is not None else 0,
            "final_val_acc": float(df["val_acc"].iloc[-1]) if len(df) else math.nan,
            "epochs": int(df["epoch"].max()) if len(df) else 0,
            "time_s": float(last.get("time_total_s", 0.0) or 0.0),
            "start": float(df["timestamp"].min() - df["time_this_iter_s"].iloc[0]) if len(df) and "time_this_iter_s" in df else math.nan,
            "end": float(df["timestamp"].max()) if len(df) else math.nan,
            # What the trial was given (trainable.trial.Grant): the cap is visible in trials.csv.
            **{k: last.get(k) for k in GRANT_COLUMNS},
        })
    trials = pd.DataFrame(rows)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=HISTORY_COLUMNS)
    history = history.astype({"epoch": "int64", "val_acc": "float64"}, errors="ignore")
    return Experiment(path, config, trials, history, tuple(params))


def best_trial(trials: pd.DataFrame) -> pd.Series:
    """The retrain rule: the best final val_acc among trials that reached the largest budget.

    Budget = epochs trained. Trials stopped early by ASHA are only compared with each other
    if none went further; diverged and errored trials never count. Ties go to the earlier trial.
    """
    ok = trials[trials["status"].isin(["completed", "stopped", "running", "pending"]) & (trials["epochs"] > 0)]
    if ok.empty:
        raise ValueError("no trial finished an epoch yet: nothing to pick the best configuration from")
    top = ok[ok["epochs"] == ok["epochs"].max()]
    return top.sort_values(["final_val_acc", "order"], ascending=[False, True]).iloc[0]
