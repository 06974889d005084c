"""Bounded storage: checkpoints stay only where they can still be used.

A running trial keeps its last two checkpoints: the newest to resume from, the one before in
case the newest is corrupt. CheckpointKeeper deletes the older ones as each new one arrives
(on_checkpoint). Ray's own CheckpointConfig(num_to_keep=2) would do that too, but with it Ray
also forces an experiment snapshot, and waits for it, whenever a trial has checkpointed
num_to_keep times since the last one (ray.tune.execution.experiment_state.
_ExperimentCheckpointManager.on_trial_checkpoint): with short epochs nearly one snapshot per
trial, each writing the state of every trial so far (docs/scaling.md). So the search gives Ray
no num_to_keep. A snapshot may then name a checkpoint deleted since, or one older than the
trial's newest: at a resumed driver's first step the keeper points every running trial at the
newest checkpoint in its folder (fall_forward), since Ray refuses to restore a missing one and
an older one would train epochs again; the trial's own loader also falls back past an
unreadable one (core.checkpoint.sibling_checkpoints). A finished trial's checkpoints are
deleted only once two snapshots have been saved since it finished (CheckpointKeeper._pending).

Once a trial has finished it is never resumed again, so the keeper keeps the newest checkpoint of the
best `keep` finished trials only (ranked by the retrain rule of core.results.best_trial:
most epochs, then final val_acc, then the earlier trial), slimmed to the weights (the
optimizer's moments are two thirds of it and only a resume needs them), and deletes every
other checkpoint of a finished trial. Metrics, config and progress.csv stay. Errored trials
keep their checkpoints: `vidtune resume` may retry them from the newest.
"""

from __future__ import annotations

import io
import logging
import pickle
from typing import Any

import pyarrow.fs
import torch
from ray.tune import Callback

from vidtune.trainable.core.checkpoint import STATE

logger = logging.getLogger(__name__)

PREFIX = "checkpoint_"
RUNNING_KEEP = 2   # a running trial's newest checkpoint, and one to fall back on


def _checkpoints(trial: Any) -> list[str]:
    """The trial's checkpoint folders in storage, oldest first."""
    fs, path = trial.storage.storage_filesystem, trial.path
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []
    return sorted(i.path for i in infos
                  if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith(PREFIX))


def rank_key(last: dict[str, Any], order: int) -> tuple[float, float, int]:
    """Sort key, best first: most epochs, then the best final val_acc, then the earlier trial.
    A diverged trial ranks last."""
    if last.get("diverged"):
        return (0.0, 0.0, order)
    return (-float(last.get("epoch", 0) or 0), -float(last.get("val_acc", 0) or 0), order)


class CheckpointKeeper(Callback):
    """Each finished trial is looked at once: kept (newest checkpoint only) if it enters the
    top `keep`, else emptied; the trial it pushes out of the top is emptied then. So the cost
    per finished trial does not grow with the number of trials."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._top: list[tuple[tuple[float, float, int], str]] = []   # (rank key, trial_id), best first
        self._index: dict[str, int] = {}   # trial_id -> its place in Tune's list of trials
        self._pending: list[list[Any]] = []   # [trial, folders to delete, folder to slim, snapshots seen]
        self._looked = False   # this driver's first step has looked at the running trials

    # The keeper is pickled with the run config (Tuner.restore builds it again from that): only
    # the setting and the top travel; the rest belongs to one driver.
    TRANSIENT = ("_index", "_pending", "_looked")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self.TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(int(state["keep"]))   # type: ignore[misc]
        self.__dict__.update((k, v) for k, v in state.items() if k not in self.TRANSIENT)

    # A finished trial's checkpoints are deleted (or slimmed) only once two experiment snapshots
    # have been saved since it finished: Tune snapshots every trial's state every 2 s, and a
    # driver killed before a snapshot records the trial as finished restores it as running, from
    # its checkpoints. Tune asks the callbacks for their state (get_state) exactly when it saves
    # a snapshot; the second such call after the finish also means the first snapshot's upload
    # to the storage is done (Tune's syncer runs one upload at a time). Waiting costs a few
    # seconds of disk, and no snapshot is forced (a forced snapshot per finished trial made a
    # search of 2,000 sub-second trials about eight times slower).
    SNAPSHOTS_BEFORE_DELETE = 2

    def _delete_after_snapshot(self, trial: Any, folders: list[str], slim: str | None = None) -> None:
        # A trial pushed out of the top soon after it finished has its older folders queued
        # already: each folder is queued once.
        queued = {folder for entry in self._pending for folder in entry[1]}
        folders = [folder for folder in folders if folder not in queued]
        if folders or slim:
            self._pending.append([trial, folders, slim, 0])

    def _carry_out(self, everything: bool = False) -> None:
        due, keep = self._pending, []
        for entry in due:
            trial, folders, slim, seen = entry
            if not everything and seen < self.SNAPSHOTS_BEFORE_DELETE:
                keep.append(entry)
                continue
            if slim:
                _slim(trial.storage.storage_filesystem, slim)
            _delete(trial, folders)
        self._pending[:] = keep

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """A resumed driver's first step, before Ray restores any trial: a running trial goes
        on from the newest checkpoint in its folder, not from the one the snapshot names (deleted
        since, or older). Ray's Trainable.restore raises ValueError ("does not exist on storage
        anymore") for a missing checkpoint before the trial's own code runs."""
        self._carry_out()
        if self._looked:
            return
        self._looked = True
        for trial in trials:
            if trial.status != "TERMINATED":
                fall_forward(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._carry_out(everything=True)   # the search is over: Tune's last snapshot has them all

    def _place(self, trials: list, trial_id: str) -> int:
        """The trial's index in Tune's list, which only grows: indexed as it grows, so each
        lookup costs O(1) on average instead of a scan of every trial so far."""
        for i in range(len(self._index), len(trials)):
            self._index.setdefault(trials[i].trial_id, i)
        return self._index.get(trial_id, len(trials))

    def get_state(self) -> dict | None:
        for entry in self._pending:   # Tune is saving a snapshot now
            entry[3] += 1
        return {"top": [[list(key), trial_id] for key, trial_id in self._top]}

    def set_state(self, state: dict) -> None:
        self._top = [((float(a), float(b), int(c)), trial_id)
                     for (a, b, c), trial_id in state.get("top", [])]

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        """A running trial's new checkpoint is in storage: drop all but the newest two."""
        _delete(trial, _checkpoints(trial)[:-RUNNING_KEEP])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        order = self._place(trials, trial.trial_id)
        key = rank_key(dict(trial.last_result or {}), order)
        if any(trial_id == trial.trial_id for _, trial_id in self._top):
            return
        entered = self.keep > 0 and (len(self._top) < self.keep or key < self._top[-1][0])
        folders = _checkpoints(trial)
        self._delete_after_snapshot(trial, folders[:-1] if entered else folders,
                                    slim=folders[-1] if entered and folders else None)
        if not entered:
            return
        self._top = sorted([*self._top, (key, trial.trial_id)])
        if len(self._top) > self.keep:
            _, out = self._top.pop()
            place = self._place(trials, out)
            if place < len(trials):
                self._delete_after_snapshot(trials[place], _checkpoints(trials[place]))


def fall_forward(trial: Any) -> None:
    """Point a running trial's latest checkpoint record at the newest checkpoint in its
    folder: the snapshot may name one deleted since, or an older one than the trial wrote
    before the driver went down (snapshots are taken every 10 s or more, checkpoints every
    epoch), and resuming from that would train its later epochs again."""
    manager = trial.run_metadata.checkpoint_manager
    latest = manager.latest_checkpoint_result
    if latest is None or latest.checkpoint is None:
        return
    fs = latest.checkpoint.filesystem
    there = _checkpoints(trial)
    if not there or there[-1].rstrip("/") <= latest.checkpoint.path.rstrip("/"):
        return   # the recorded one is the newest (or nothing is left: Ray names the missing one)
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint

    manager._latest_checkpoint_result = (   # Ray 2.60 has no setter
        _TrainingResult(checkpoint=Checkpoint(there[-1], filesystem=fs), metrics=latest.metrics))
    trial.invalidate_json_state()


def _slim(fs: Any, folder: str) -> None:
    """Drop the optimizer state from a finished trial's checkpoint (written beside, renamed)."""
    path = f"{folder}/{STATE}"
    try:
        with fs.open_input_file(path) as f:
            state = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
        if "optimizer" not in state:
            return
        buffer = io.BytesIO()
        torch.save({**{k: v for k, v in state.items() if k != "optimizer"}, "slim": True}, buffer)
        with fs.open_output_stream(path + ".tmp") as f:
            f.write(buffer.getvalue())
        fs.move(path + ".tmp", path)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        logger.warning("could not slim checkpoint %s: %s", folder, exc)


def _delete(trial: Any, folders: list[str]) -> None:
    for folder in folders:
        try:
            trial.storage.storage_filesystem.delete_dir(folder)
        except OSError as exc:
            logger.warning("could not delete checkpoint %s: %s", folder, exc)
