"""Millisecond tests of what keeps a search's cost per trial bounded, on Ray's real objects
(no Ray started): the trial files written straight into storage, a finished trial's slimmed
bookkeeping and staging folder, one set of snapshot files however often a search resumes, a
resume from a snapshot that names a deleted checkpoint, and the one-line errors for a cluster
that cannot be joined."""

from __future__ import annotations

import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pyarrow.fs
import pytest
from ray.train import Checkpoint, CheckpointConfig
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.train._internal.session import _TrainingResult
from ray.tune.trainable.metadata import _TrainingRunMetadata

from vidtune.trainable.tune.cluster import (
    AUTH_FIX,
    ClusterError,
    cluster_error,
    join_cluster,
    probe,
)
from vidtune.trainable.tune.loggers import NoTensorBoard, Params, ProgressCSV
from vidtune.trainable.tune.slim import SlimFinished, slim
from vidtune.trainable.tune.snapshots import FAMILIES, DropStaleSnapshots, session_of


@dataclass(eq=False)   # hashed by identity, as Ray's Trial: loggers key their files by trial
class Trial:
    """What a logger reads from a Ray trial: its config, its folder in storage (path), the
    driver's staging folder (local_path) and the storage's filesystem."""

    trial_id: str
    config: dict
    path: str
    local_path: str
    status: str = "RUNNING"
    run_metadata: Any = None

    @property
    def storage(self) -> SimpleNamespace:
        return SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem())

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)

    def invalidate_json_state(self) -> None:
        pass


def _trial(tmp_path: Path, trial_id: str = "a") -> Trial:
    return Trial(trial_id, {"lr": 0.01, "conv_base": 8}, str(tmp_path / "storage" / f"trial_{trial_id}"),
                 str(tmp_path / "staging" / f"trial_{trial_id}"))


def test_trial_files_go_straight_into_storage_and_nothing_to_staging(tmp_path):
    trial = _trial(tmp_path)
    loggers = [ProgressCSV(), Params(), NoTensorBoard()]
    for logger in loggers:
        logger.on_trial_start(0, [trial], trial)
    for epoch in (1, 2):
        for logger in loggers:
            logger.on_trial_result(0, [trial], trial, {"epoch": epoch, "val_acc": 0.1 * epoch,
                                                        "config": trial.config})
    for logger in loggers:
        logger.on_trial_complete(0, [trial], trial)
    folder = Path(trial.path)
    assert sorted(p.name for p in folder.iterdir()) == ["params.json", "progress.csv"]
    assert json.loads((folder / "params.json").read_text()) == trial.config
    assert pd.read_csv(folder / "progress.csv").to_dict("list") == {"epoch": [1, 2], "val_acc": [0.1, 0.2]}
    assert not (tmp_path / "staging").exists(), "a snapshot would copy it again and again"
    # The same trial run again (a resume, a retry) appends, without a second header.
    again = ProgressCSV()
    again.on_trial_result(0, [trial], trial, {"epoch": 3, "val_acc": 0.3})
    again.on_trial_complete(0, [trial], trial)
    assert pd.read_csv(folder / "progress.csv")["epoch"].tolist() == [1, 2, 3]
    assert again._trial_continue == {}, "no entry kept per finished trial"


def _metadata(tmp_path: Path, epochs: int) -> _TrainingRunMetadata:
    """A trial's run metadata as Ray 2.60 builds it from its reports and checkpoints."""
    meta = _TrainingRunMetadata()
    meta.checkpoint_manager = _CheckpointManager(CheckpointConfig(num_to_keep=None))
    for epoch in range(1, epochs + 1):
        result = {"epoch": epoch, "val_acc": 0.1 * epoch, "train_loss": 1.0 / epoch,
                  "time_total_s": 2.0 * epoch, "training_iteration": epoch}
        meta.last_result = result
        for key, value in result.items():
            meta.update_metric(key, value, step=epoch)
        folder = tmp_path / f"checkpoint_{epoch:06d}"
        folder.mkdir()
        meta.checkpoint_manager.register_checkpoint(
            _TrainingResult(Checkpoint.from_directory(str(folder)), dict(result)))
    return meta


def test_a_finished_trial_keeps_its_last_result_and_newest_checkpoint_only(tmp_path):
    meta = _metadata(tmp_path, epochs=6)
    before = len(meta.get_json_state())
    trial = SimpleNamespace(run_metadata=meta)
    slim(trial)
    state = json.loads(meta.get_json_state())     # the JSON Ray writes into its snapshot
    assert state["metric_analysis"] == {} and state["metric_n_steps"] == {}
    assert state["last_result"]["epoch"] == 6 and state["last_result"]["val_acc"] == pytest.approx(0.6)
    manager = meta.checkpoint_manager
    assert [r.checkpoint.path for r in manager.best_checkpoint_results] == [str(tmp_path / "checkpoint_000006")]
    assert manager.latest_checkpoint_result.checkpoint.path == str(tmp_path / "checkpoint_000006")
    assert len(meta.get_json_state()) < before / 3, (len(meta.get_json_state()), before)


def test_a_finished_trial_leaves_no_empty_staging_folder_behind(tmp_path):
    ended, failed = _trial(tmp_path, "a"), _trial(tmp_path, "b")
    for trial in (ended, failed):
        (tmp_path / trial.trial_id).mkdir()
        trial.run_metadata = _metadata(tmp_path / trial.trial_id, epochs=1)
    for trial in (ended, failed):
        trial.init_local_path()
    (Path(failed.local_path) / "error.txt").write_text("Failure # 1")   # Ray uploads it
    slimmer = SlimFinished()
    slimmer.on_trial_complete(0, [ended, failed], ended)
    slimmer.on_trial_error(0, [ended, failed], failed)
    assert not Path(ended.local_path).exists() and (Path(failed.local_path) / "error.txt").exists()
    # A resumed driver: Ray made staging folders for every restored trial; ended ones go.
    ended.init_local_path()
    ended.status, failed.status = "TERMINATED", "ERROR"
    restored = pickle.loads(pickle.dumps(slimmer))
    restored.on_step_begin(0, [ended, failed])
    assert not Path(ended.local_path).exists() and Path(failed.local_path).exists()


def test_a_cluster_that_cannot_be_joined_is_one_line_naming_the_address_and_the_fix():
    from ray.exceptions import AuthenticationError

    refused = cluster_error("10.0.0.1:6379", AuthenticationError("Token authentication is "
                                                                 "enabled but the token is invalid"))
    assert "10.0.0.1:6379" in str(refused) and AUTH_FIX in str(refused)
    nobody = cluster_error("10.0.0.1:6379", ConnectionError("Failed to connect to GCS at "
                                                            "10.0.0.1:6379\nretried 5 times"))
    assert "cannot reach a Ray cluster at 10.0.0.1:6379" in str(nobody)
    assert "ray start --head" in str(nobody) and "\n" not in str(nobody)
    assert isinstance(nobody, ValueError)   # the commands print it as one line, exit status 2
    # As Ray 2.60 raises a wrong token: a bare ConnectionError from the GCS client's
    # AuthenticationError, quoted as a traceback in a RuntimeError.
    try:
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: Traceback (most "
                               "recent call last):\n  File \"node.py\", line 996\nray.exceptions."
                               "AuthenticationError: RPC error: InvalidAuthToken: Authentication "
                               "token is missing or incorrect. Ensure that the token ...\n")
        except RuntimeError as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from inner
    except ConnectionError as exc:
        wrapped = cluster_error("10.0.0.1:6379", exc)
    assert "refused this driver's authentication" in str(wrapped) and "\n" not in str(wrapped)
    assert str(wrapped).endswith("Ray said: RPC error: InvalidAuthToken: Authentication token is "
                                 "missing or incorrect"), wrapped


def test_an_address_where_nothing_listens_fails_in_seconds_not_minutes():
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        probe(f"127.0.0.1:{listening.getsockname()[1]}")   # something answers: Ray's turn
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))                   # bound, not listening: refused
            address = f"127.0.0.1:{closed.getsockname()[1]}"
            t0 = time.perf_counter()
            with pytest.raises(ClusterError, match=f"cannot reach a Ray cluster at {address}: "):
                join_cluster(address)                       # Ray is never started
            assert time.perf_counter() - t0 < 5
    probe("auto")   # left to Ray


def test_a_resumed_search_drops_the_earlier_sessions_snapshot_files(tmp_path):
    staging, storage = tmp_path / "staging", tmp_path / "storage"
    old, new = "2026-11-27_07-59-24", "2026-11-27_09-12-00"
    for folder in (staging, storage):     # Ray copied the old session's files into staging
        folder.mkdir()
        for pattern in FAMILIES:
            (folder / pattern.format(old)).write_text("old session " * 100)
            os.utime(folder / pattern.format(old), (time.time() - 3600,) * 2)
        (folder / "trial_a").mkdir()
    for name in ("vidtune.json", "budget.jsonl", "optuna.db", "tuner.pkl"):
        (storage / name).write_text("kept")
    dropper = pickle.loads(pickle.dumps(DropStaleSnapshots()))   # as Tune restores it
    for pattern in FAMILIES:
        (staging / pattern.format(new)).write_text("this session")
    trial = SimpleNamespace(storage=SimpleNamespace(
        experiment_driver_staging_path=str(staging), experiment_fs_path=str(storage),
        storage_filesystem=pyarrow.fs.LocalFileSystem()))
    dropper.get_state()
    dropper.on_step_end(0, [trial])                              # not uploaded yet: nothing goes
    assert len(list(storage.glob(f"*{old}*"))) == len(FAMILIES)
    for pattern in FAMILIES:                                     # the sync has copied it
        (storage / pattern.format(new)).write_text("this session")
    dropper.on_step_end(0, [trial])                              # no snapshot in this step
    assert len(list(storage.glob(f"*{old}*"))) == len(FAMILIES)
    dropper.get_state()
    dropper.on_step_end(0, [trial])
    assert not list(staging.glob(f"*{old}*")) and not list(storage.glob(f"*{old}*"))
    assert len(list(storage.glob(f"*{new}*"))) == len(FAMILIES) and (storage / "trial_a").is_dir()
    assert {p.name for p in storage.iterdir()} >= {"vidtune.json", "budget.jsonl", "optuna.db", "tuner.pkl"}
    assert session_of("experiment_state-x_y.json") == "x_y" and session_of("tuner.pkl") is None


def test_a_trial_resumes_from_the_newest_checkpoint_when_the_snapshot_names_a_deleted_one(tmp_path):
    """The keeper deletes all but a running trial's newest two checkpoints; Ray's snapshot may
    be older and name one of the deleted: local and remote (URI) storage fall forward."""
    from ray import tune

    from vidtune.trainable.core.checkpoint import save_state
    from vidtune.trainable.tune.adapter import _load_checkpoint

    trial = tmp_path / "exp" / "trial_a"
    for epoch in (3, 4):
        save_state(trial / f"checkpoint_{epoch - 1:06d}", {"epoch": epoch}, {"epoch": epoch})
    local = pyarrow.fs.LocalFileSystem()
    remote = pyarrow.fs.SubTreeFileSystem(str(tmp_path), local)   # paths relative to a bucket
    for fs, path in ((local, str(trial / "checkpoint_000001")), (remote, "exp/trial_a/checkpoint_000001")):
        assert _load_checkpoint(tune.Checkpoint(path, filesystem=fs))["epoch"] == 4
        present = path.replace("000001", "000002")           # a snapshot naming one still there
        assert _load_checkpoint(tune.Checkpoint(present, filesystem=fs))["epoch"] == 3


def test_a_resumed_trial_whose_snapshot_names_a_deleted_checkpoint_is_pointed_at_the_newest(tmp_path):
    """Ray's Trainable.restore refuses a checkpoint that is gone, before the trial's code runs
    (seen in bench_scale: a trial killed mid-search errored on every retry). The keeper points
    the restored trial at the newest checkpoint left at the resumed driver's first step;
    finished trials are left alone."""
    from vidtune.trainable.tune.retention import CheckpointKeeper

    trials = []
    for trial_id, status, left in (("a", "PENDING", (2, 3)), ("b", "PAUSED", ()),
                                   ("c", "TERMINATED", ())):
        trial = _trial(tmp_path, trial_id)
        Path(trial.path).mkdir(parents=True)
        trial.status = status
        trial.run_metadata = _metadata(Path(trial.path), epochs=3)   # checkpoints 1-3
        for epoch in {1, 2, 3} - set(left):
            os.rmdir(Path(trial.path) / f"checkpoint_{epoch:06d}")
        trials.append(trial)
    # Ray's snapshot named checkpoint 1 for every trial.
    for trial in trials:
        manager = trial.run_metadata.checkpoint_manager
        manager._latest_checkpoint_result = manager.best_checkpoint_results[0]
    # Its metrics, as Ray stored them (none but the score with TUNE_ONLY_STORE_CHECKPOINT_
    # SCORE_ATTRIBUTE, which a search earlier in the same process sets).
    recorded = trials[0].run_metadata.checkpoint_manager.latest_checkpoint_result.metrics
    keeper = pickle.loads(pickle.dumps(CheckpointKeeper(keep=3)))   # as restored
    keeper.on_step_begin(0, trials)
    a, b, c = (t.run_metadata.checkpoint_manager.latest_checkpoint_result for t in trials)
    assert a.checkpoint.path.endswith("trial_a/checkpoint_000003") and a.metrics == recorded
    # Nothing left in its folder: left as it was (Ray then names the missing checkpoint).
    assert b.checkpoint.path.endswith("trial_b/checkpoint_000001")
    assert c.checkpoint.path.endswith("checkpoint_000001")   # finished: never restored
    trials[0].run_metadata.checkpoint_manager._latest_checkpoint_result = None
    keeper.on_step_begin(1, trials)                      # only the first step looks
    assert trials[0].run_metadata.checkpoint_manager.latest_checkpoint_result is None


def test_trials_are_read_in_creation_order_not_the_snapshots():
    """Ray 2.60's snapshot lists trials in set order; the trials table (its `order`: the plots'
    trial axis, the retrain rule's tie-break) follows the trainables' first starts."""
    from vidtune.trainable.tune.experiment import TrialRecord, _by_first_start

    records = [TrialRecord(t, "TERMINATED", {}, {}, f"trial_{t}", None) for t in ("c", "x", "a", "b")]
    history = pd.DataFrame({"trial_id": ["a", "a", "b", "c"], "started_at": [5.0, 5.0, 7.0, float("nan")],
                            "epoch": [1, 2, 1, 1]})
    figures = {"c": {"start": 6.0}}   # no adapter clock (an older folder): Ray's timestamps
    assert [r.trial_id for r in _by_first_start(records, history, figures)] == ["a", "c", "b", "x"]


def test_a_last_epoch_reported_again_is_not_written_twice(tmp_path):
    from vidtune.trainable.tune.loggers import last_row, same_epoch

    path = tmp_path / "progress.csv"
    path.write_text("epoch,val_acc,started_at\n4,0.875,1.0\n5,0.9166666666666666,1.0\n")
    last = last_row(path)
    assert same_epoch(last, {"epoch": 5, "val_acc": 0.9166666666666666, "started_at": 2.0})
    assert not same_epoch(last, {"epoch": 5, "val_acc": 0.9}), "a different result is a new row"
    assert not same_epoch(last, {"epoch": 4, "val_acc": 0.875}), "an earlier epoch trained again"
    assert not same_epoch(last, {"val_acc": 0.9166666666666666}), "no epoch: written"
    path.write_text("epoch,val_acc\n")
    assert last_row(path) == {} and not same_epoch({}, {"epoch": 1, "val_acc": 0.5})


def test_a_progress_logger_comes_back_from_the_pickle_of_a_resume():
    """Tuner.restore unpickles the run config's callbacks: the logger comes back whole."""
    logger = ProgressCSV()
    logger._last["t1"] = {"epoch": "3"}
    back = pickle.loads(pickle.dumps(logger))
    assert back._last == {"t1": {"epoch": "3"}} and back._trial_files == {}
