"""The trial files the search writes: progress.csv and params.json, straight into storage.

Ray Tune adds three logger callbacks unless it is given its own kind (ray.tune.utils.callback.
_create_default_callbacks): CSV (progress.csv), JSON (params.json, params.pkl and result.json,
a second copy of every report) and TensorBoard (an events file per trial). All three write
into the driver's staging folder (trial.local_path, under /tmp/ray/session_*), and every
experiment snapshot copies that whole folder to the storage (ray.train._internal.storage.
_upload_to_fs_path via pyarrow.fs.copy_files): each trial's files again at every snapshot, so
a snapshot's cost grew with the number of trials ever run (docs/scaling.md).

So the search passes its own loggers, one of each kind, so that Ray adds none:
- ProgressCSV: Ray's CSV logger, but on a local or shared filesystem it writes progress.csv
  in the trial's folder of the storage itself, where nothing has to copy it;
- Params: params.json only (the sampled config), at the trial's start, the same way;
- NoTensorBoard: no events files (nothing reads them).
On a storage URI (an object store) the files stay in the staging folder and Ray's snapshot
uploads them with the rest. experiment.py reads only progress.csv and error.txt.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray.air.constants import EXPR_PARAM_FILE, EXPR_PROGRESS_FILE
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.utils.util import SafeFallbackEncoder


def on_local_storage(trial: Any) -> bool:
    """Is the trial's storage a filesystem path (local or shared), not a URI?"""
    return isinstance(trial.storage.storage_filesystem, pyarrow.fs.LocalFileSystem)


def trial_folder(trial: Any) -> Path:
    """Where a trial's files go: its folder in the storage when that is a filesystem path,
    else Ray's staging folder, which Ray uploads at every snapshot."""
    if on_local_storage(trial):
        folder = Path(trial.path)
    else:
        trial.init_local_path()
        folder = Path(trial.local_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class ProgressCSV(CSVLoggerCallback):
    """Ray 2.60's CSVLoggerCallback, writing progress.csv in the storage's trial folder."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[Any, dict[str, str]] = {}   # trial -> its file's last row, as it goes on

    def _setup_trial(self, trial: Any) -> None:
        if not on_local_storage(trial):   # Ray's own: fetch the file, append, upload
            super()._setup_trial(trial)
            return
        # As Ray's _setup_trial, with the folder changed: a trial that runs again (resume,
        # retry) appends to its file without a second header.
        if trial in self._trial_files:
            self._trial_files[trial].close()
        path = trial_folder(trial) / EXPR_PROGRESS_FILE
        self._trial_continue[trial] = path.exists() and path.stat().st_size > 0
        if self._trial_continue[trial]:
            self._last[trial] = last_row(path)
        self._trial_files[trial] = path.open("at")
        self._trial_csv[trial] = None   # type: ignore[assignment]  # Ray's own: None until the first result

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        if trial not in self._trial_files:   # as Ray's: the file is opened at the first result
            self._setup_trial(trial)
        last = self._last.pop(trial, None)
        if last is not None and same_epoch(last, result):
            # A trial that finished just before the driver was killed reports its last epoch
            # again when resumed (core.trial.run_trial): that row is in the file already.
            return
        super().log_trial_result(iteration, trial, result)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        super().log_trial_end(trial, failed)
        self._trial_continue.pop(trial, None)   # Ray keeps this entry for every trial ever run


def last_row(path: Path) -> dict[str, str]:
    """The last row of a progress.csv, by its header ({} if it has no row)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def same_epoch(row: dict[str, str], result: dict) -> bool:
    """Is `result` the file's last row reported again: the same epoch and val_acc?"""
    try:
        return (float(row["epoch"]), float(row["val_acc"])) == (float(result["epoch"]), float(result["val_acc"]))
    except (KeyError, TypeError, ValueError):
        return False


class Params(JsonLoggerCallback):
    """params.json, the trial's sampled config, written at its start; no result.json (the
    same reports are in progress.csv) and no params.pkl."""

    def log_trial_start(self, trial: Any) -> None:
        with open(trial_folder(trial) / EXPR_PARAM_FILE, "w") as f:
            json.dump(trial.config, f, indent=2, sort_keys=True, cls=SafeFallbackEncoder)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        pass

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        pass


class NoTensorBoard(TBXLoggerCallback):
    """Present so that Ray adds no TensorBoard logger; writes nothing."""

    def __init__(self) -> None:   # no tensorboardX import, no per-trial writers
        pass

    def log_trial_start(self, trial: Any) -> None:
        pass

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        pass

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        pass


def loggers() -> list[Any]:
    return [ProgressCSV(), Params(), NoTensorBoard()]
