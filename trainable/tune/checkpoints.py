"""Bounded storage: checkpoints stay only where they can still be used.

A running trial keeps its last two checkpoints (Ray's num_to_keep=2): the newest to resume
from, the one before in case the newest is corrupt. Once a trial has finished it is never
resumed again, so CheckpointKeeper, a Tune callback, keeps the newest checkpoint of the
best `keep` finished trials only (ranked by the retrain rule of core.trials.best_trial:
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

    def get_state(self) -> dict | None:
        return {"top": [[list(key), trial_id] for key, trial_id in self._top]}

    def set_state(self, state: dict) -> None:
        self._top = [((float(a), float(b), int(c)), trial_id)
                     for (a, b, c), trial_id in state.get("top", [])]

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        order = next((i for i, t in enumerate(trials) if t is trial), len(trials))
        key = rank_key(dict(trial.last_result or {}), order)
        if any(trial_id == trial.trial_id for _, trial_id in self._top):
            return
        entered = self.keep > 0 and (len(self._top) < self.keep or key < self._top[-1][0])
        folders = _checkpoints(trial)
        _delete(trial, folders[:-1] if entered else folders)
        if not entered:
            return
        if folders:
            _slim(trial.storage.storage_filesystem, folders[-1])
        self._top = sorted([*self._top, (key, trial.trial_id)])
        if len(self._top) > self.keep:
            _, out = self._top.pop()
            pushed = next((t for t in trials if t.trial_id == out), None)
            if pushed is not None:
                _delete(pushed, _checkpoints(pushed))


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
