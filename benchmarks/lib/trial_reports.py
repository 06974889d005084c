"""Each trial's reports, read through load_experiment as every other reader of a search does.

A trial's reports are its rows of the history table (one per epoch). The timing parts of the
search benchmark need three of its columns beyond the metrics: epoch_time_s (the loop's own),
and started_at / reported_at, the float wall clock the adapter adds to every report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vidtune.trainable.tune.experiment import Experiment


def per_trial(exp: Experiment) -> list[pd.DataFrame]:
    """Each trial's reported rows, ordered by the trial's start; trials with none are left out."""
    h = exp.history
    runs = [h[h["trial_id"] == t].reset_index(drop=True) for t in exp.trials.get("trial_id", [])]
    return sorted((df for df in runs if len(df)), key=lambda df: span(df)[0])


def has_clock(df: pd.DataFrame) -> bool:
    """Every report carries the adapter's float started_at / reported_at."""
    return all(c in df and bool(df[c].notna().all()) for c in ("started_at", "reported_at"))


def span(df: pd.DataFrame) -> tuple[float, float]:
    """(start, end) of a trial in wall-clock seconds: the trainable's start to its last report.

    Prefers the float started_at/reported_at the adapter reports; falls back on Ray's whole-
    second timestamp minus the first report's time_total_s (its first iteration's duration).
    """
    if has_clock(df):
        return float(df["started_at"].iloc[0]), float(df["reported_at"].iloc[-1])
    return (float(df["timestamp"].iloc[0] - df["time_total_s"].iloc[0]),
            float(df["timestamp"].iloc[-1]))


def report_intervals(df: pd.DataFrame) -> list[float]:
    """Seconds between consecutive reports of one trial (one per epoch after the first)."""
    if has_clock(df):
        return np.diff(df["reported_at"].to_numpy(float)).tolist()
    return np.diff(df["time_total_s"].to_numpy(float)).tolist()
