"""The search's Optuna study, mirrored into an RDB (SQLite by default) that
optuna-dashboard and optuna.load_study can open, live: `vidtune dashboard` shows it.

Why a mirror: Ray's OptunaSearch on an RDBStorage crashed on Tuner.restore after a SIGKILL
(UpdateFinishedTrialError: the restored searcher re-tells trials the database already holds
as finished). So the searcher keeps its in-memory study (pickled with Ray's experiment
checkpoints, restored consistently), and this Tune callback writes the trials to the RDB: a
RUNNING row at a trial's first result, its val_acc as an intermediate value at every epoch,
and its final state once, when it has finished. A finished row is never written again.

At the first step of every driver (a new search or a resumed one) it reconciles: a finished
trial missing from the RDB is added (or its RUNNING row finished), keyed by the Ray trial id.
Its saved state (written with Tune's experiment snapshot, so it agrees with the snapshot's
trials) holds the ids it has finished, the RUNNING rows it holds open and the number of rows
the study had, so a resumed driver reads only the rows written after that snapshot (by the
driver that was killed) and its open rows instead of the whole study. A mirror without that
state (lost, or saved by an older vidtune), or a study with fewer rows than the state says,
reads every row once, as before. A RUNNING row of a trial the restored experiment does not
know (created after the last snapshot, so Ray has forgotten it) becomes FAIL with status
"lost", so the dashboard shows no trial running forever.

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


LOST = "lost"   # the status of a RUNNING row whose trial the restored experiment does not know


class OptunaMirror(Callback):
    # Class defaults: mirrors pickled by an older vidtune resume too.
    _copy: _RemoteCopy | None = None
    _rows: int | None = None
    _known: set[str] = set()      # replaced per instance before it is changed
    _live: dict[str, int] = {}    # likewise
    _trusted = False
    _reconciled = False

    def __init__(self, study_name: str, space: SpaceSpec, max_epochs: int, storage_url: str = "") -> None:
        self.study_name, self.space, self.max_epochs = study_name, space, max_epochs
        self.storage_url = storage_url        # "" -> sqlite in the experiment folder
        self._values: dict[str, dict[int, float]] = {}   # unfinished trial -> {epoch: val_acc}
        self._known: set[str] = set()         # Ray trial ids the study holds as finished
        self._live: dict[str, int] = {}       # Ray trial id -> its RUNNING row's Optuna trial_id
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
        return {"values": self._values, "written": sorted(self._known), "rows": self._rows,
                "live": dict(self._live)}

    def set_state(self, state: dict) -> None:
        self._values = {k: dict(v) for k, v in state["values"].items()}
        self._known = set(state.get("written", ()))
        self._live = {k: int(v) for k, v in state.get("live", {}).items()}
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
            self._known, self._live = set(self._known), dict(self._live)
            self._read_rows()
        return self._study

    def _row(self, study_id: int, number: int) -> tuple[int, optuna.trial.FrozenTrial]:
        """(Optuna trial_id, row) of the study's row `number`; KeyError if there is no such row."""
        assert self._storage is not None
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(study_id, number)
        return trial_id, self._storage.get_trial(trial_id)

    def _learn(self, trial_id: int, row: optuna.trial.FrozenTrial) -> None:
        ray_id = str(row.user_attrs.get(RAY_ID))
        if row.state.is_finished():
            self._known.add(ray_id)
            self._live.pop(ray_id, None)
        else:
            self._live[ray_id] = trial_id

    def _read_rows(self) -> None:
        """Learn the ids the study holds: the rows after the snapshot's count and the rows it
        held open if the state can be trusted (its last row is there), else every row."""
        assert self._storage is not None and self._study is not None
        study_id = self._storage.get_study_id_from_name(self.study_name)
        number = self._rows or 0
        if self._trusted and number:
            try:
                self._row(study_id, number - 1)
            except KeyError:   # the study lost rows since the snapshot: trust nothing
                self._trusted, number = False, 0
        if not self._trusted:
            self._known, self._live = set(), {}   # what is there, only
            rows = self._study.get_trials(deepcopy=False)
            for row in rows:
                self._learn(row._trial_id, row)
            number = len(rows)
        else:
            for trial_id in list(self._live.values()):   # open rows the killed driver may have closed
                self._learn(trial_id, self._storage.get_trial(trial_id))
            while True:   # the rows the killed driver wrote after its last snapshot
                try:
                    self._learn(*self._row(study_id, number))
                except KeyError:
                    break
                number += 1
        self._trusted, self._rows = True, number

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if "epoch" not in result or "val_acc" not in result:
            return
        epoch, value = int(result["epoch"]), float(result["val_acc"])
        self._values.setdefault(trial.trial_id, {})[epoch] = value
        if trial.trial_id in self._known or result.get("diverged"):
            return   # a diverged trial's last report ends it: _write takes it from here
        try:
            row = self._live_row(trial)
            if math.isfinite(value):
                assert self._storage is not None
                self._storage.set_trial_intermediate_value(row, epoch, value)
            self._pushed()
        except Exception as exc:  # noqa: BLE001 - the mirror must never stop the search
            logger.warning("could not write trial %s's epoch %d to the Optuna study: %s",
                           trial.trial_id, epoch, exc)

    def _live_row(self, trial) -> int:
        """The RUNNING row of a trial, created (with the epochs reported so far) if it has none."""
        self._open(trial)
        if trial.trial_id not in self._live:
            assert self._storage is not None and self._study is not None
            self._live[trial.trial_id] = self._storage.create_new_trial(
                self._study._study_id, template_trial=self._frozen(trial, running=True))
            self._rows = (self._rows or 0) + 1
        return self._live[trial.trial_id]

    def _pushed(self) -> None:
        if self._copy is not None:
            self._copy.push()

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        if not self._reconciled and trials:   # first step of this driver: reconcile
            self._reconciled = True
            self.reconcile(trials)

    def reconcile(self, trials: list) -> int:
        """Write the finished trials the study lacks; returns how many were written. Opening
        the study checks it against the state (reads the rows written after it, or every row
        if it cannot be trusted), so the rest is a lookup per trial. RUNNING rows of trials
        the experiment no longer has are closed as FAIL, status "lost"."""
        if not trials:
            return 0
        try:
            self._open(trials[0])
        except Exception as exc:  # noqa: BLE001 - the mirror must never stop the search
            logger.warning("could not open the Optuna study to reconcile it: %s", exc)
            return 0
        ids = {t.trial_id for t in trials}
        for ray_id in [r for r in self._live if r not in ids]:
            self._close_lost(ray_id)
        finished = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        return sum(self._write(t) for t in finished if t.trial_id not in self._known)

    def _close_lost(self, ray_id: str) -> None:
        try:
            assert self._storage is not None
            row = self._live.pop(ray_id)
            self._storage.set_trial_user_attr(row, "status", LOST)
            self._storage.set_trial_state_values(row, optuna.trial.TrialState.FAIL)
            self._known.add(ray_id)
            self._pushed()
        except Exception as exc:  # noqa: BLE001 - the mirror must never stop the search
            logger.warning("could not close the lost trial %s in the Optuna study: %s", ray_id, exc)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._write(trial)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._write(trial)

    def _write(self, trial) -> bool:
        """Finish a trial in the study unless it is there finished; True if it was written."""
        try:
            study = self._open(trial)
            if trial.trial_id in self._known:
                self._values.pop(trial.trial_id, None)
                return False
            frozen = self._frozen(trial)
            row = self._live.get(trial.trial_id)
            if row is None:
                study.add_trial(frozen)
                self._rows = (self._rows or 0) + 1
            else:   # its RUNNING row: the epochs the row may lack, then its attributes and state
                assert self._storage is not None
                have = self._storage.get_trial(row)   # one read: write only what differs
                for epoch, value in frozen.intermediate_values.items():
                    if have.intermediate_values.get(epoch) != value:
                        self._storage.set_trial_intermediate_value(row, epoch, value)
                for key, value in frozen.user_attrs.items():
                    if have.user_attrs.get(key) != value:
                        self._storage.set_trial_user_attr(row, key, value)
                self._storage.set_trial_state_values(row, frozen.state, frozen.values)
                del self._live[trial.trial_id]
            self._known.add(trial.trial_id)
            self._values.pop(trial.trial_id, None)
            self._pushed()
            return True
        except Exception as exc:  # noqa: BLE001 - the mirror must never stop the search
            logger.warning("could not write trial %s to the Optuna study: %s", trial.trial_id, exc)
            return False

    def _frozen(self, trial, running: bool = False) -> optuna.trial.FrozenTrial:
        last = dict(trial.last_result or {})
        values = {e: v for e, v in self._values.get(trial.trial_id, {}).items() if math.isfinite(v)}
        # on_trial_complete runs while Ray still says RUNNING: a finished trial is classified
        # as TERMINATED (or ERROR).
        status = TrialStatus.RUNNING if running else \
            classify("ERROR" if trial.status == "ERROR" else "TERMINATED", last, self.max_epochs)
        state = optuna.trial.TrialState.RUNNING if running else STATES[status]
        value = float(last["val_acc"]) if status is TrialStatus.COMPLETED else None
        distributions = space_distributions(self.space)
        params = {k: v for k, v in trial.config.items() if k in distributions}
        attrs = {RAY_ID: trial.trial_id, "status": status.value}
        if not running:   # a running row's epochs are its intermediate values
            # An errored trial's last result is its error report, which has no epoch.
            attrs["epochs"] = int(last.get("epoch") or max(values, default=0))
        return optuna.trial.create_trial(
            state=state, value=value, params=params,
            distributions={k: distributions[k] for k in params},
            intermediate_values=values, user_attrs=attrs,
        )
