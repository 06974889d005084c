"""A results folder (finished, interrupted or still running) as pandas tables.

This module knows the files Ray Tune 2.60 writes, so it lives in the Ray layer, but it
imports no Ray: `vidtune analyze` and `retrain` read a folder without starting anything.
It reads the newest experiment_state-*.json once (trial ids, statuses, configs, last
results, error files) and each trial's progress.csv (one row per report).

trials:  one row per trial, in creation order: trial_id, order, status, the sampled
         parameters, best_val_acc, best_epoch, final_val_acc, epochs, time_s, s_per_epoch
         (the median epoch's seconds), start, end, what it was given: device, gpu_share,
         gpu_cap_mb, gpu_name, gpu_uuid (the physical card), precision (bf16 or fp32,
         core/precision.py); what it used: gpu_peak_mb (the most CUDA memory its tensors
         held, over all its epochs; 0 on the CPU); for an errored trial its error in one line
         (error), and any fallback to an older checkpoint (warning).
history: one row per reported epoch: trial_id, epoch, val_acc, val_loss, train_loss,
         time_total_s, timestamp, and the timings the benchmarks read: epoch_time_s (the
         loop's own), started_at and reported_at (the adapter's float wall clock; Ray's
         timestamp is whole seconds), data_s (the epoch's wait for batches) and gpu_peak_mb.

status is a vidtune.trainable.core.results.TrialStatus value (classify() decides it).
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vidtune.trainable.core.failures import last_error_line
from vidtune.trainable.core.results import classify
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.storage import filesystem, is_uri

GRANT_COLUMNS = ["device", "gpu_share", "gpu_cap_mb", "gpu_name", "gpu_uuid", "precision"]
HISTORY_COLUMNS = ["trial_id", "epoch", "val_acc", "val_loss", "train_loss", "time_total_s", "timestamp",
                   "epoch_time_s", "cpu_threads", "started_at", "reported_at", "data_s",
                   "gpu_peak_mb"]
STATE_GLOB = "experiment_state-*.json"
ERROR_FILE = "error.txt"   # Ray's, in each trial folder: one block per failure
STATE_TRIES, STATE_RETRY_S = 5, 0.5   # a snapshot caught mid-copy is read again


def damaged_state(path: str, name: str, exc: Exception) -> str:
    """The error for an experiment_state file that does not parse."""
    return (f"{path}/{name} is damaged ({exc}): it is Ray's record of the search's trials "
            "and cannot be rebuilt from the other files; restore it from a backup, or start "
            f"a new search with the same settings: vidtune search --config {path}/vidtune.json "
            "--name NEW")


@dataclass(frozen=True)
class Experiment:
    path: str
    config: SearchConfig
    trials: pd.DataFrame
    history: pd.DataFrame
    param_names: tuple[str, ...]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as Ray's experiment snapshot holds it."""

    trial_id: str
    status: str                      # Ray's: PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    config: dict[str, Any]
    last_result: dict[str, Any]
    folder: str                      # relative to the experiment folder
    error_file: str | None


class _Folder:
    """Listing and reading inside an experiment folder, local or behind a URI (pyarrow)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fs: Any = None
        if is_uri(path):
            self.fs, self.base = filesystem(path)

    def newest_state(self) -> str | None:
        if self.fs is None:
            names = sorted(p.name for p in Path(self.path).glob(STATE_GLOB))
        else:
            import pyarrow.fs

            infos = self.fs.get_file_info(pyarrow.fs.FileSelector(self.base))
            names = sorted(i.base_name for i in infos
                           if i.base_name.startswith("experiment_state-") and i.base_name.endswith(".json"))
        return names[-1] if names else None

    def read(self, name: str) -> bytes | None:
        try:
            if self.fs is None:
                return (Path(self.path) / name).read_bytes()
            with self.fs.open_input_stream(f"{self.base.rstrip('/')}/{name}") as f:
                return f.read()
        except (FileNotFoundError, OSError):
            return None


def read_trial_records(path: str) -> list[TrialRecord]:
    """The trials of the newest experiment snapshot, in creation order. ValueError if none."""
    folder = _Folder(path)
    for attempt in range(STATE_TRIES):
        name = folder.newest_state()
        raw = folder.read(name) if name else None
        if raw is None:
            raise ValueError(f"{path} holds no Ray Tune experiment state yet (no {STATE_GLOB}): "
                             "the search stopped before its first trial started")
        try:
            trial_data = json.loads(raw)["trial_data"]
            break
        except (ValueError, KeyError, TypeError) as exc:
            # A running driver copies its snapshot over the old one every few seconds: a
            # reader may catch it half-copied. Read it again; damaged for good: say so.
            if attempt + 1 < STATE_TRIES:
                time.sleep(STATE_RETRY_S)
                continue
            raise ValueError(damaged_state(path, str(name), exc)) from None
    records = []
    for state, runtime in trial_data:
        state, runtime = json.loads(state), json.loads(runtime)
        records.append(TrialRecord(
            trial_id=state["trial_id"], status=state["status"], config=dict(state["config"]),
            last_result=dict(runtime.get("last_result") or {}),
            folder=state.get("relative_logdir") or f"trial_{state['trial_id']}",
            error_file=runtime.get("error_filename")))
    return records


def _progress(folder: _Folder, record: TrialRecord) -> pd.DataFrame:
    raw = folder.read(f"{record.folder}/progress.csv")
    # A running trial may be writing its last row: read only the complete lines, so a reader
    # of a running search never sees half a number (0.5 of 0.53).
    raw = raw[: raw.rfind(b"\n") + 1] if raw else raw
    if not raw:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    try:
        return pd.read_csv(io.BytesIO(raw))
    except (pd.errors.EmptyDataError, pd.errors.ParserError):   # being written right now
        return pd.DataFrame(columns=HISTORY_COLUMNS)


def _ray_status(folder: _Folder, record: TrialRecord, max_failures: int) -> str:
    """Ray's status of a trial, with one correction.

    Ray 2.60 does not snapshot a trial whose worker died on its last allowed try:
    TuneController._actor_failed drops the actor first, so _schedule_trial_stop returns before
    _mark_trial_to_checkpoint, and experiment_state keeps the trial as RUNNING. Its error.txt
    tells: Ray appends one block per failure and gives up after max_failures + 1 of them.
    """
    if record.status in ("TERMINATED", "ERROR"):
        return record.status
    raw = folder.read(f"{record.folder}/{ERROR_FILE}")
    if raw and raw.count(b"Failure # ") > max_failures:
        return "ERROR"
    return record.status


def _error_line(folder: _Folder, record: TrialRecord) -> str:
    """An errored trial's error in one line: the one it reported before raising a deterministic
    error (adapter), else the last exception in Ray's error.txt."""
    if record.last_result.get("error"):
        return str(record.last_result["error"])
    raw = folder.read(f"{record.folder}/{record.error_file or ERROR_FILE}")
    return last_error_line(raw.decode(errors="replace")) if raw else "unknown error (no error.txt)"


def _per_trial(history: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each trial's figures from the whole history table at once (grouped, not one small
    frame per trial: a search of thousands of trials loads in seconds).

    best: the highest val_acc of a non-diverged epoch (the earlier epoch on a tie); final: the
    last report's val_acc; start: the first report's timestamp minus its iteration time."""
    if not len(history):
        return {}
    g = history.groupby("trial_id", sort=False)
    first = history.drop_duplicates("trial_id", keep="first").set_index("trial_id")
    last = history.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    out: dict[str, dict[str, Any]] = {t: {} for t in last.index}
    for t, v in last["val_acc"].items():
        out[t]["final_val_acc"] = float(v)
    for t, v in g["epoch"].max().items():
        out[t]["epochs"] = int(v)
    for t, v in g["timestamp"].max().items():
        out[t]["end"] = float(v)
    if "epoch_time_s" in history:
        for t, v in g["epoch_time_s"].median().items():
            out[t]["s_per_epoch"] = float(v)
    if "time_this_iter_s" in history:
        start = g["timestamp"].min() - first["time_this_iter_s"]
        for t, v in start.items():
            out[t]["start"] = float(v)
    diverged = history["diverged"].fillna(0) if "diverged" in history else 0
    valid = history[(diverged == 0) & history["val_acc"].notna()]
    if len(valid):
        best = valid.loc[valid["val_acc"].astype(float).groupby(valid["trial_id"], sort=False).idxmax()]
        for t, acc, epoch in zip(best["trial_id"], best["val_acc"], best["epoch"], strict=True):
            out[t].update(best_val_acc=float(acc), best_epoch=int(epoch))
    return out


def _by_first_start(records: list[TrialRecord], history: pd.DataFrame,
                    figures: dict[str, dict[str, Any]]) -> list[TrialRecord]:
    """The records in creation order: by the trainable's first start (the adapter's clock, or
    the start worked out from Ray's timestamps), trials that never reported last. Ray 2.60's
    snapshot lists its trials in no useful order (trial_data comes from a set of the trials
    changed since the last snapshot, TuneController._get_trial_checkpoints)."""
    started = (history.dropna(subset=["started_at"]).groupby("trial_id")["started_at"].min()
               if "started_at" in history else pd.Series(dtype=float))

    def key(record: TrialRecord) -> float:
        t = started.get(record.trial_id, figures.get(record.trial_id, {}).get("start", math.nan))
        return float(t) if t is not None and math.isfinite(float(t)) else math.inf

    return sorted(records, key=key)   # stable: the snapshot's order among equals


def load_experiment(path: str | Path) -> Experiment:
    """Load a results folder. ValueError naming the folder if it is not one."""
    path = str(path) if is_uri(str(path)) else str(Path(path).expanduser().resolve())
    config = SearchConfig.load(path)
    records = read_trial_records(path)
    folder = _Folder(path)
    params: list[str] = []
    frames = []
    for record in records:
        for key in record.config:
            if key not in params:
                params.append(key)
        df = _progress(folder, record)
        if len(df) and "val_acc" in df and "epoch" in df:
            frames.append(df.assign(trial_id=record.trial_id))
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=HISTORY_COLUMNS)
    # A deterministic error is reported once before it is raised, with no epoch (adapter). A
    # trial resumed from a checkpoint may report an epoch twice: keep the latest.
    history = history.dropna(subset=["epoch"])
    history = history.drop_duplicates(subset=["trial_id", "epoch"], keep="last").reset_index(drop=True)
    figures = _per_trial(history)
    records = _by_first_start(records, history, figures)
    rows = []
    for order, record in enumerate(records):
        f = figures.get(record.trial_id, {})
        last = record.last_result
        if not last and f:   # no result in the snapshot yet: the last report in progress.csv
            mine = history[history["trial_id"] == record.trial_id]
            last = mine.iloc[-1].dropna().to_dict()   # the columns other trials have: NaN here
        ray_status = _ray_status(folder, record, config.max_failures)
        rows.append({
            "trial_id": record.trial_id,
            "order": order,
            "status": classify(ray_status, last, config.max_epochs).value,
            **record.config,
            "best_val_acc": f.get("best_val_acc", math.nan),
            "best_epoch": f.get("best_epoch", 0),
            "final_val_acc": f.get("final_val_acc", math.nan),
            "epochs": f.get("epochs", 0),
            "time_s": float(last.get("time_total_s", 0.0) or 0.0),
            # What a config costs: the median epoch (a slow config shows here, and in the report).
            "s_per_epoch": f.get("s_per_epoch", math.nan),
            "start": f.get("start", math.nan),
            "end": f.get("end", math.nan),
            # What the trial was given (core.trial.Grant): the cap is visible in trials.csv.
            **{k: last.get(k) for k in GRANT_COLUMNS},
            # What it used: the peak over every epoch (a retried trial restarts its count).
            "gpu_peak_mb": float(df["gpu_peak_mb"].max()) if len(df) and "gpu_peak_mb" in df
            else math.nan,
            "error": _error_line(folder, record) if ray_status == "ERROR" else "",
            "warning": str(last.get("restore_warning") or ""),
        })
    trials = pd.DataFrame(rows)
    history = history.reindex(columns=HISTORY_COLUMNS)
    history = history.astype({"epoch": "int64", "val_acc": "float64"}, errors="ignore")
    return Experiment(path, config, trials, history, tuple(params))
