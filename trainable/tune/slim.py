"""A finished trial's bookkeeping in the driver, cut to what a search still reads.

Ray 2.60 keeps for every trial, finished or not, in the driver's memory and in every
experiment snapshot (TuneController.save_to_dir writes the state of all trials):
- metric_analysis and metric_n_steps (ray.tune.trainable.metadata._TrainingRunMetadata.
  update_metric): max, min, avg, last, last-5-avg and last-10-avg of every numeric metric,
  with two deques per metric stored as cloudpickle hex. For vidtune's ~20 reported numbers
  that was 13 of the 23 KB a trial took in experiment_state-*.json. Only Ray's
  ExperimentAnalysis.get_best_trial reads them; vidtune reads progress.csv
  (experiment.py) and the last result.
- the checkpoints its checkpoint manager has registered, each with the result it was
  reported with. vidtune's CheckpointKeeper keeps at most one checkpoint of a finished trial,
  so the manager keeps only its newest.

and, on the driver's disk:
- an empty folder in the driver's staging area (trial.local_path), which every experiment
  snapshot copies to the storage with the rest of that area (pyarrow.fs.copy_files over the
  whole tree: ~50 ms of CPU for 2,000 empty folders, at every snapshot). On a path storage the
  trial's files go straight into storage (loggers.py), so the folder stays empty unless Ray
  wrote the trial's error.txt there.

SlimFinished clears all three when a trial ends (completed, stopped or errored), and at a
resumed driver's first step for the trials that had ended before (Ray makes a staging folder
for every restored trial). The last result, the config and the error file, which
experiment.py, the Optuna mirror and the live table read, stay.
"""

from __future__ import annotations

import os
from typing import Any

from ray.tune import Callback

from vidtune.trainable.tune.loggers import on_local_storage


def slim(trial: Any) -> None:
    """Drop a finished trial's per-metric statistics and all but its newest checkpoint record."""
    meta = trial.run_metadata
    meta.metric_analysis = {}      # setting an attribute invalidates its cached JSON
    meta.metric_n_steps = {}
    manager = meta.checkpoint_manager
    if manager is not None:
        latest = manager.latest_checkpoint_result
        manager._checkpoint_results = [latest] if latest is not None else []
        meta.invalidate_cache()


def drop_staging(trial: Any) -> None:
    """Remove the trial's staging folder if it is empty (on a URI storage it holds the files
    Ray uploads: kept)."""
    if on_local_storage(trial):
        try:
            os.rmdir(trial.local_path)
        except OSError:   # not there, or not empty (an error.txt to upload)
            pass


class SlimFinished(Callback):
    _swept = False

    def __getstate__(self) -> dict[str, Any]:
        return {}   # a resumed driver sweeps again

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._swept and trials:   # once per driver: the trials restored as ended
            self._swept = True
            for trial in trials:
                if trial.status in ("TERMINATED", "ERROR"):
                    drop_staging(trial)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        slim(trial)
        drop_staging(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        slim(trial)
        drop_staging(trial)
