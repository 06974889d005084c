"""Numbers derived from a search's trials and history tables (pandas only, no Ray, no plots).

The tables come from vidtune.trainable.tune.experiment.load_experiment:
trials  - one row per trial: trial_id, order, status, parameters, best_val_acc, best_epoch,
          final_val_acc, epochs, time_s, start, end, and what it was given and used on a GPU
          (gpu_share, gpu_cap_mb, gpu_peak_mb);
history - one row per reported epoch: trial_id, epoch, val_acc, ..., timestamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from vidtune.trainable.core.results import TrialStatus, count_statuses


@dataclass(frozen=True)
class ComputeUsage:
    """Epochs trained, summed over trials, against every trial running to max_epochs."""

    used_epochs: int
    full_epochs: int        # num_trials * max_epochs: the same trials without ASHA
    num_trials: int
    max_epochs: int

    @property
    def saved_epochs(self) -> int:
        return self.full_epochs - self.used_epochs

    @property
    def saved_fraction(self) -> float:
        return self.saved_epochs / self.full_epochs if self.full_epochs else 0.0


def status_counts(trials: pd.DataFrame) -> dict[TrialStatus, int]:
    """{status: number of trials}, in TrialStatus order, statuses with no trial left out."""
    return count_statuses(trials["status"]) if len(trials) else {}


def format_counts(counts: dict[TrialStatus, int]) -> str:
    return ", ".join(f"{s.label} {n}" for s, n in counts.items()) or "no trials"


def asha_milestones(grace_period: int, reduction_factor: float, max_epochs: int) -> list[int]:
    """The epochs at which ASHA decides: each rung grace_period * reduction_factor**k below
    max_epochs, rounded up (Ray records a trial at the first epoch >= the rung, e.g. 3 for 2.5)."""
    if grace_period < 1 or reduction_factor < 2:
        raise ValueError(f"grace_period {grace_period} must be >= 1 and reduction_factor "
                         f"{reduction_factor} >= 2")
    out, k = [], 0
    while grace_period * reduction_factor**k < max_epochs:
        out.append(math.ceil(grace_period * reduction_factor**k - 1e-9))
        k += 1
    return out


def compute_usage(trials: pd.DataFrame, max_epochs: int) -> ComputeUsage:
    n = len(trials)
    used = int(trials["epochs"].sum()) if n else 0
    return ComputeUsage(used_epochs=used, full_epochs=n * max_epochs, num_trials=n,
                        max_epochs=max_epochs)


def trial_scores(trials: pd.DataFrame) -> pd.Series:
    """Each trial's best val_acc, a diverged trial that never reported a sane epoch scoring 0."""
    score = pd.to_numeric(trials["best_val_acc"], errors="coerce")
    diverged = (trials["status"] == TrialStatus.DIVERGED) & (trials["epochs"] > 0)
    return score.where(~(diverged & score.isna()), 0.0)


def best_so_far_by_trial(trials: pd.DataFrame) -> pd.DataFrame:
    """order, best_val_acc of the trial, best_so_far (running max in creation order)."""
    df = trials.sort_values("order")[["order", "trial_id", "status"]].copy()
    df["best_val_acc"] = trial_scores(trials).loc[df.index]
    df["best_so_far"] = df["best_val_acc"].cummax().ffill()
    return df.reset_index(drop=True)


def best_so_far_by_time(trials: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """elapsed_s (since the first trial started), trial_id, val_acc, best_so_far, in time order.

    A report's time is its trial's start plus its time_total_s (Ray's timestamps are whole
    seconds, too coarse for short epochs); the timestamp where that is not known.
    """
    cols = ["elapsed_s", "trial_id", "val_acc", "best_so_far"]
    h = history.dropna(subset=["val_acc"]) if len(history) else history
    if not len(h):
        return pd.DataFrame(columns=cols)
    starts = (pd.to_numeric(trials.set_index("trial_id")["start"], errors="coerce")
              if "start" in trials and len(trials) else pd.Series(dtype=float))
    start = h["trial_id"].map(starts).astype(float)
    stamp = pd.to_numeric(h["timestamp"], errors="coerce").astype(float)
    when = (start + pd.to_numeric(h["time_total_s"], errors="coerce")).fillna(stamp)
    t0 = float(pd.concat([starts.dropna(), when.dropna()]).min())
    out = pd.DataFrame({"elapsed_s": when - t0, "trial_id": h["trial_id"],
                        "val_acc": h["val_acc"].astype(float)}).dropna(subset=["elapsed_s"])
    out = out.sort_values("elapsed_s", kind="stable")
    out["best_so_far"] = out["val_acc"].cummax()
    return out.reset_index(drop=True)[cols]


def gpu_packing(trials: pd.DataFrame) -> str | None:
    """How trials shared their GPUs, in one line: the share each had (so how many fit on one
    GPU), and the peak CUDA memory they used against their cap. None if no trial had a GPU."""
    if not len(trials) or "gpu_share" not in trials:
        return None
    shares = pd.to_numeric(trials["gpu_share"], errors="coerce")
    share = float(shares.max()) if shares.notna().any() else 0.0
    if not share > 0:
        return None
    text = f"{share:g} GPU per trial" + (f" ({math.floor(1 / share + 1e-9)} per GPU)" if share < 1 else "")
    peak = pd.to_numeric(trials.get("gpu_peak_mb", pd.Series(dtype=float)), errors="coerce").dropna()
    if peak.empty or not peak.max() > 0:
        return text + "; no CUDA memory used (the trials trained on CPUs)"
    text += (f"; peak CUDA memory per trial: median {peak.median():.0f} MiB, "
             f"max {peak.max():.0f} MiB")
    cap = pd.to_numeric(trials.get("gpu_cap_mb", pd.Series(dtype=float)), errors="coerce").max()
    if cap > 0:
        text += f", of a {cap:.0f} MiB cap ({100 * peak.max() / cap:.0f} % of it)"
    return text
