"""The search's Optuna study, mirrored into an RDB (SQLite by default) that
optuna-dashboard and optuna.load_study can open.

Why a mirror: Ray's OptunaSearch on an RDBStorage crashed on Tuner.restore after a SIGKILL
(UpdateFinishedTrialError: the restored searcher re-tells trials the database already holds
as finished). So the searcher keeps its in-memory study (pickled with Ray's experiment
checkpoints, restored consistently), and this Tune callback writes each trial to the RDB once,
when it has finished. Finished trials never change, so nothing is ever updated twice.

At the first step of every driver (a new search or a resumed one) it reconciles: any finished
trial missing from the RDB is added, keyed by the Ray trial id. Its saved state (written with
Tune's experiment snapshot, so it agrees with the snapshot's trials) holds the ids it has
written and the number of rows the study had, so a resumed driver reads only the rows written
after that snapshot (by the driver that was killed) instead of the whole study, and writes
only the finished trials the state does not list (a write that failed). A mirror without that
state (lost, or saved by an older vidtune), or a study with fewer rows than the state says,
reads every row once, as before. Per-epoch values are kept only until the trial is written.

States: completed -> COMPLETE (value = final val_acc); stopped by ASHA -> PRUNED; diverged or
errored -> FAIL. Intermediate values are the per-epoch val_acc. A resumed search does not
rerun errored trials (driver.resume_search), so a FAIL row never needs an update.

The database lives in the experiment folder. For a storage URI (an object store, where SQLite
cannot write) the study is kept in a local working copy that is uploaded to the folder after
every write, and fetched from it at the start of a resumed search.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs
from ray.tune import Callback

from vidtune.search_spaces import SpaceSpec, space_distributions
from vidtune.trainable.core.results import TrialStatus, classify

logger = logging.getLogger(__name__)

DB_FILE = "optuna.db"
STATES = {TrialStatus.COMPLETED: optuna.trial.TrialState.COMPLETE,
          TrialStatus.STOPPED: optuna.trial.TrialState.PRUNED,
          TrialStatus.DIVERGED: optuna.trial.TrialState.FAIL,
          TrialStatus.ERRORED: optuna.trial.TrialState.FAIL}
RAY_ID = "ray_trial_id"


def default_storage_url(experiment_path: str) -> str:
    return f"sqlite:///{Path(experiment_path) / DB_FILE}"


class _RemoteCopy:
    """optuna.db for an experiment folder on an object store (a storage URI): SQLite needs a
    local file, so the study lives in a local working copy, fetched from the folder when it
    is there (a resumed search) and put back after every write."""

    def __init__(self, fs: Any, folder: str) -> None:
        self.fs, self.remote = fs, f"{folder}/{DB_FILE}"
        self.local = Path(tempfile.mkdtemp(prefix="vidtune-optuna-")) / DB_FILE
        try:
            with fs.open_input_stream(self.remote) as f:
                self.local.write_bytes(f.read())
        except FileNotFoundError:
            pass

    @property
    def url(self) -> str:
        return f"sqlite:///{self.local}"

    def push(self) -> None:
        with self.fs.open_output_stream(self.remote) as f:
            f.write(self.local.read_bytes())


class OptunaMirror(Callback):
    # Class defaults: mirrors pickled by an older vidtune resume too.
    _copy: _RemoteCopy | None = None
    _rows: int | None = None
    _known: set[str] = set()      # replaced per instance before it is changed
    _trusted = False
    _reconciled = False

    def __init__(self, study_name: str, space: SpaceSpec, max_epochs: int, storage_url: str = "") -> None:
        self.study_name, self.space, self.max_epochs = study_name, space, max_epochs
        self.storage_url = storage_url        # "" -> sqlite in the experiment folder
        self._values: dict[str, dict[int, float]] = {}   # unwritten trial -> {epoch: val_acc}
        self._known: set[str] = set()         # Ray trial ids the study holds
        self._trusted = False                 # _known lists every finished trial of the snapshot
        self._rows: int | None = None         # rows of the study at the last snapshot, then now
        self._reconciled = False
        self._study: optuna.Study | None = None
        self._storage: optuna.storages.RDBStorage | None = None
        self._copy: _RemoteCopy | None = None      # the local working copy for a storage URI

    # Tune pickles callbacks with the experiment; the open study must not travel with them.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None, "_storage": None, "_copy": None,
                "_reconciled": False}

    def get_state(self) -> dict | None:
        return {"values": self._values, "written": sorted(self._known), "rows": self._rows}

    def set_state(self, state: dict) -> None:
        self._values = {k: dict(v) for k, v in state["values"].items()}
        self._known = set(state.get("written", ()))
        self._trusted = "written" in state
        self._rows = state.get("rows")

    def _open(self, trial) -> optuna.Study:
        if self._study is None:
            # Ray's filesystem and path of the experiment folder (trial.remote_experiment_path
            # drops a storage URI's scheme, so it cannot be used as a path).
            fs, folder = trial.storage.storage_filesystem, trial.storage.experiment_fs_path
            if self.storage_url:
                url = self.storage_url
            elif isinstance(fs, pyarrow.fs.LocalFileSystem):
                url = default_storage_url(folder)
            else:
                self._copy = _RemoteCopy(fs, folder)
                url = self._copy.url
            self._storage = optuna.storages.RDBStorage(url)
            self._study = optuna.create_study(study_name=self.study_name, storage=self._storage,
                                              direction="maximize", load_if_exists=True)
            self._known = set(self._known)
            self._read_rows()
        return self._study

    def _row_id(self, study_id: int, number: int) -> str | None:
        """The Ray trial id of the study's row `number`; KeyError if there is no such row."""
        assert self._storage is not None
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(study_id, number)
        return self._storage.get_trial(trial_id).user_attrs.get(RAY_ID)

    def _read_rows(self) -> None:
        """Learn the ids the study holds: the rows after the snapshot's count if the state can
        be trusted (its last row is there), else every row."""
        assert self._storage is not None and self._study is not None
        study_id = self._storage.get_study_id_from_name(self.study_name)
        number = self._rows or 0
        if self._trusted and number:
            try:
                self._row_id(study_id, number - 1)
            except KeyError:   # the study lost rows since the snapshot: trust nothing
                self._trusted, number = False, 0
        if not self._trusted:
            rows = self._study.get_trials(deepcopy=False)
            self._known = {str(t.user_attrs.get(RAY_ID)) for t in rows}   # what is there, only
            number = len(rows)
        else:
            while True:   # the rows the killed driver wrote after its last snapshot
                try:
                    self._known.add(str(self._row_id(study_id, number)))
                except KeyError:
                    break
                number += 1
        self._trusted, self._rows = True, number

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if "epoch" in result and "val_acc" in result:
            self._values.setdefault(trial.trial_id, {})[int(result["epoch"])] = float(result["val_acc"])

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        if not self._reconciled and trials:   # first step of this driver: reconcile
            self._reconciled = True
            self.reconcile(trials)

    def reconcile(self, trials: list) -> int:
        """Write the finished trials the study lacks; returns how many were written. Opening
        the study checks it against the state (reads the rows written after it, or every row
        if it cannot be trusted), so the rest is a lookup per trial."""
        finished = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        if not finished:
            return 0
        try:
            self._open(finished[0])
        except Exception as exc:  # noqa: BLE001 - the mirror must never stop the search
            logger.warning("could not open the Optuna study to reconcile it: %s", exc)
            return 0
        return sum(self._write(t) for t in finished if t.trial_id not in self._known)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._write(trial)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._write(trial)

    def _write(self, trial) -> bool:
        """Add a finished trial to the study unless it is there; True if it was added."""
        try:
            study = self._open(trial)
            if trial.trial_id in self._known:
                self._values.pop(trial.trial_id, None)
                return False
            study.add_trial(self._frozen(trial))
            self._known.add(trial.trial_id)
            self._values.pop(trial.trial_id, None)
            self._rows = (self._rows or 0) + 1
            if self._copy is not None:
                self._copy.push()
            return True
        except Exception as exc:  # noqa: BLE001 - the mirror must never stop the search
            logger.warning("could not write trial %s to the Optuna study: %s", trial.trial_id, exc)
            return False

    def _frozen(self, trial) -> optuna.trial.FrozenTrial:
        last = dict(trial.last_result or {})
        values = {e: v for e, v in self._values.get(trial.trial_id, {}).items() if math.isfinite(v)}
        # Only finished trials are written; on_trial_complete runs while Ray still says RUNNING.
        status = classify("ERROR" if trial.status == "ERROR" else "TERMINATED", last, self.max_epochs)
        state = STATES[status]
        value = float(last["val_acc"]) if status is TrialStatus.COMPLETED else None
        distributions = space_distributions(self.space)
        params = {k: v for k, v in trial.config.items() if k in distributions}
        return optuna.trial.create_trial(
            state=state, value=value, params=params,
            distributions={k: distributions[k] for k in params},
            intermediate_values=values,
            # An errored trial's last result is its error report, which has no epoch.
            user_attrs={RAY_ID: trial.trial_id, "status": status.value,
                        "epochs": int(last.get("epoch") or max(values, default=0))},
        )
