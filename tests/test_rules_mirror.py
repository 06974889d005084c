"""The Optuna mirror's rules on a real SQLite study, no Ray: states, values, and reconcile.

The callbacks are called as Tune calls them, with stand-in trials that carry what the mirror
reads from a Ray trial (trial_id, status, last_result, config, remote_experiment_path).
Creating Optuna's schema in a new SQLite file takes about a second, so each test starts from
a copy of one empty database that has it; the study itself the mirror creates as in a search.
"""

from __future__ import annotations

import logging
import math
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from standins import storage

from vidtune.trainable.tune.optuna_mirror import DB_FILE, RAY_ID, OptunaMirror

MAX_EPOCHS = 3
STUDY = "s"
CONFIG = {"conv_blocks": 2, "conv_base": 8, "lstm_hidden": 16, "lr": 0.004}   # the tiny space

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class Trial:
    """What the mirror reads from a Ray trial."""

    trial_id: str
    remote_experiment_path: str
    config: dict[str, Any] = field(default_factory=lambda: dict(CONFIG))
    status: str = "RUNNING"
    last_result: dict[str, Any] = field(default_factory=dict)
    fs: Any = None

    @property
    def storage(self) -> SimpleNamespace:
        return storage(self.remote_experiment_path, self.fs)


def train(mirror: OptunaMirror, trial: Trial, curve: list[float], *,
          diverged: bool = False) -> None:
    """Report one epoch per value of curve, as Tune passes results to its callbacks."""
    for epoch, val_acc in enumerate(curve, start=1):
        last = diverged and epoch == len(curve)
        trial.last_result = {"epoch": epoch, "val_acc": val_acc, "diverged": int(last),
                             "val_loss": math.nan if last else 1.0}
        mirror.on_trial_result(0, [trial], trial, trial.last_result)


def end(mirror: OptunaMirror, trial: Trial, status: str = "TERMINATED") -> None:
    trial.status = status
    if status == "ERROR":
        mirror.on_trial_error(0, [trial], trial)
    else:
        mirror.on_trial_complete(0, [trial], trial)


def stored(folder: Path) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as a fresh process would load them; [] if no study was created yet."""
    try:
        study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{folder / DB_FILE}")
    except KeyError:    # no such study
        return []
    return study.get_trials()


def by_ray_id(folder: Path) -> dict[str, optuna.trial.FrozenTrial]:
    trials = stored(folder)
    ids = [t.user_attrs[RAY_ID] for t in trials]
    assert len(ids) == len(set(ids)), f"a Ray trial was written twice: {ids}"
    return dict(zip(ids, trials, strict=True))


def mirror() -> OptunaMirror:
    return OptunaMirror(STUDY, "tiny", MAX_EPOCHS)   # storage "": optuna.db in the experiment


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with Optuna's tables and no study."""
    path = tmp_path_factory.mktemp("schema") / DB_FILE
    optuna.storages.RDBStorage(f"sqlite:///{path}")
    return path


@pytest.fixture
def experiment(tmp_path: Path, empty_db: Path) -> Path:
    """The experiment folder, holding the empty optuna.db a search's first write would create."""
    shutil.copy(empty_db, tmp_path / DB_FILE)
    return tmp_path


def test_finished_trials_are_stored_with_their_state_value_and_curve(experiment):
    m = mirror()
    completed, stopped, diverged, errored = (Trial(f"t{i}", str(experiment)) for i in range(4))
    completed.config = {**CONFIG, "not_sampled": "x"}     # config keys outside the space stay out
    train(m, completed, [0.3, 0.5, 0.45])
    end(m, completed)
    train(m, stopped, [0.2])
    end(m, stopped)
    train(m, diverged, [0.4, math.nan], diverged=True)   # a NaN curve point is left out
    end(m, diverged)
    train(m, errored, [0.3, 0.6, 0.7])                   # errored after its last epoch: still FAIL
    end(m, errored, "ERROR")

    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{experiment / DB_FILE}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    got = {t.user_attrs[RAY_ID]: t for t in study.get_trials()}
    state = optuna.trial.TrialState
    want = {  # trial: (state, value, intermediate values, status, epochs)
        "t0": (state.COMPLETE, 0.45, {1: 0.3, 2: 0.5, 3: 0.45}, "completed", 3),
        "t1": (state.PRUNED, None, {1: 0.2}, "stopped", 1),
        "t2": (state.FAIL, None, {1: 0.4}, "diverged", 2),
        "t3": (state.FAIL, None, {1: 0.3, 2: 0.6, 3: 0.7}, "errored", 3),
    }
    assert {k: (t.state, t.value, t.intermediate_values, t.user_attrs["status"],
                t.user_attrs["epochs"]) for k, t in got.items()} == want
    for t in got.values():
        assert t.params == CONFIG
        assert set(t.distributions) == set(CONFIG)
    assert study.best_trial.user_attrs[RAY_ID] == "t0"


def test_a_running_trial_is_stored_as_running_with_its_epochs_so_far(experiment):
    """What optuna-dashboard shows while a search runs: the row, then its curve, then its end."""
    m = mirror()
    running = Trial("t0", str(experiment))
    m.on_step_begin(0, [running])
    assert stored(experiment) == []                   # no result yet: no row
    train(m, running, [0.3, 0.5])
    [row] = stored(experiment)
    assert row.state == optuna.trial.TrialState.RUNNING and row.value is None
    assert row.intermediate_values == {1: 0.3, 2: 0.5} and row.params == CONFIG
    assert row.user_attrs["status"] == "running"
    train(m, running, [0.3, 0.5, 0.55])               # epoch 1 and 2 again, then 3
    end(m, running)
    [row] = stored(experiment)
    assert (row.state, row.value, row.intermediate_values, row.user_attrs["status"]) == \
        (optuna.trial.TrialState.COMPLETE, 0.55, {1: 0.3, 2: 0.5, 3: 0.55}, "completed")


def test_a_running_row_the_restored_experiment_lost_is_closed(experiment):
    """A trial created after the last snapshot: Ray forgets it on resume, its row says so."""
    first = mirror()
    kept, forgotten = Trial("t0", str(experiment)), Trial("t1", str(experiment))
    train(first, kept, [0.3])
    state = first.get_state()                         # the snapshot, before t1 existed
    train(first, forgotten, [0.2])                    # then the kill
    second = pickle.loads(pickle.dumps(first))
    second.set_state(state)
    second.on_step_begin(0, [kept])                   # the restored experiment: t0 only
    rows = by_ray_id(experiment)
    assert (rows["t1"].state, rows["t1"].user_attrs["status"]) == (optuna.trial.TrialState.FAIL, "lost")
    assert rows["t0"].state == optuna.trial.TrialState.RUNNING
    train(second, kept, [0.3, 0.4, 0.6])
    end(second, kept)
    assert by_ray_id(experiment)["t0"].value == 0.6 and len(stored(experiment)) == 2


def test_a_trial_ending_twice_is_written_once(experiment):
    m = mirror()
    trial = Trial("t0", str(experiment))
    train(m, trial, [0.3, 0.5, 0.6])
    end(m, trial)
    end(m, trial)
    m.on_step_begin(0, [trial])
    assert list(by_ray_id(experiment)) == ["t0"]


def test_restart_adds_only_the_finished_trials_the_database_misses(experiment):
    folder = str(experiment)
    first = mirror()
    trials = {f"t{i}": Trial(f"t{i}", folder) for i in range(5)}
    first.on_step_begin(0, list(trials.values()))        # the first step of a new search
    train(first, trials["t0"], [0.3, 0.5, 0.6])
    end(first, trials["t0"])
    train(first, trials["t1"], [0.2])
    end(first, trials["t1"])
    # The driver is killed after t2 and t3 ended but before the mirror wrote them; t4 runs.
    train(first, trials["t2"], [0.4, 0.5, 0.7])
    trials["t2"].status = "TERMINATED"
    train(first, trials["t3"], [0.1])
    trials["t3"].status = "ERROR"
    train(first, trials["t4"], [0.2, 0.3])
    finished = {k for k, t in by_ray_id(experiment).items() if t.state.is_finished()}
    assert finished == {"t0", "t1"}                      # t2-t4: RUNNING rows

    # Tune restores the callback from its pickle and its saved state (curves included).
    second = pickle.loads(pickle.dumps(first))
    second.set_state(first.get_state())
    second.on_step_begin(0, list(trials.values()))
    rows = by_ray_id(experiment)
    assert set(rows) == set(trials) and rows["t4"].state == optuna.trial.TrialState.RUNNING
    assert rows["t2"].state == optuna.trial.TrialState.COMPLETE and rows["t2"].value == 0.7
    assert rows["t2"].intermediate_values == {1: 0.4, 2: 0.5, 3: 0.7}
    assert rows["t3"].state == optuna.trial.TrialState.FAIL

    second.on_step_begin(1, list(trials.values()))       # later steps do not reconcile again
    end(second, trials["t0"])                            # nor does a repeated end
    assert len(stored(experiment)) == 5
    train(second, trials["t4"], [0.2, 0.3, 0.4])
    end(second, trials["t4"])

    # A third driver, even one that lost the mirror's state, adds nothing already there.
    third = mirror()
    third.on_step_begin(0, list(trials.values()))
    rows = by_ray_id(experiment)
    assert set(rows) == set(trials) and len(stored(experiment)) == 5
    assert rows["t4"].intermediate_values == {1: 0.2, 2: 0.3, 3: 0.4}


def test_storage_url_puts_the_study_elsewhere(tmp_path):
    """Also the one test that lets the mirror create a database from nothing."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    m = OptunaMirror(STUDY, "tiny", MAX_EPOCHS, storage_url=url)
    (tmp_path / "experiment").mkdir()
    trial = Trial("t0", str(tmp_path / "experiment"))
    train(m, trial, [0.3, 0.5, 0.6])
    end(m, trial)
    assert [t.user_attrs[RAY_ID] for t in optuna.load_study(study_name=STUDY, storage=url).trials] \
        == ["t0"]
    assert not (tmp_path / "experiment" / DB_FILE).exists()


def test_a_database_it_cannot_write_never_stops_the_search(tmp_path, caplog):
    m = OptunaMirror(STUDY, "tiny", MAX_EPOCHS, storage_url=f"sqlite:///{tmp_path}/no/such.db")
    trial = Trial("t0", str(tmp_path))
    train(m, trial, [0.3])
    with caplog.at_level(logging.WARNING, logger="vidtune.trainable.tune.optuna_mirror"):
        end(m, trial)
    assert "could not write trial t0 to the Optuna study" in caplog.text


def test_a_resumed_mirror_reads_only_the_rows_written_after_its_snapshot(experiment, monkeypatch):
    folder = str(experiment)
    first = mirror()
    trials = [Trial(f"t{i}", folder) for i in range(5)]
    for trial in trials[:3]:
        train(first, trial, [0.3, 0.5, 0.6])
        end(first, trial)
    state = first.get_state()                  # the last snapshot: t0-t2 written, 3 rows
    assert state["written"] == ["t0", "t1", "t2"] and state["rows"] == 3
    assert state["values"] == {}, "a written trial's curve is not kept"
    train(first, trials[3], [0.2])             # t3 is written after the snapshot, then the kill
    end(first, trials[3])
    train(first, trials[4], [0.4, 0.5])        # t4 ran on, unfinished
    trials[3].status = "RUNNING"               # as the snapshot has it

    reads: list[int] = []
    real = optuna.Study.get_trials

    def counted(self, *args, **kwargs):
        reads.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "get_trials", counted)
    second = pickle.loads(pickle.dumps(first))
    second.set_state(state)
    second.on_step_begin(0, trials)            # reads the one row written after the snapshot
    train(second, trials[3], [0.2])            # the resumed t3 ends again: found, not re-added
    end(second, trials[3])
    train(second, trials[4], [0.4, 0.5, 0.55])
    end(second, trials[4])
    assert reads == [], "a trusted state must not read the whole study"
    rows = by_ray_id(experiment)
    assert list(rows) == ["t0", "t1", "t2", "t3", "t4"]
    assert rows["t4"].intermediate_values == {1: 0.4, 2: 0.5, 3: 0.55}
    assert second.get_state()["rows"] == 5


def test_a_study_that_lost_rows_is_refilled_from_the_snapshot(experiment, empty_db):
    folder = str(experiment)
    first = mirror()
    trials = [Trial(f"t{i}", folder) for i in range(3)]
    for trial in trials:
        train(first, trial, [0.3, 0.5, 0.6])
        end(first, trial)
    state = first.get_state()
    shutil.copy(empty_db, experiment / DB_FILE)   # optuna.db replaced by an empty one
    second = mirror()
    second.set_state(state)
    assert second.reconcile(trials) == 3
    assert list(by_ray_id(experiment)) == ["t0", "t1", "t2"]
    assert [t.state for t in stored(experiment)] == [optuna.trial.TrialState.COMPLETE] * 3
