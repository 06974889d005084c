"""A finished trial's bookkeeping in the driver, cut to what a search still reads.

Ray 2.60 keeps for every trial, in the driver's memory and in every experiment snapshot
(TuneController.save_to_dir writes the state of all trials, finished or not):
- metric_analysis and metric_n_steps (ray.tune.trainable.metadata._TrainingRunMetadata.
  update_metric): max, min, avg, last, last-5-avg and last-10-avg of every numeric metric,
  with two deques per metric stored as cloudpickle hex. For vidtune's ~20 reported numbers
  that was 13 of the 23 KB a trial took in experiment_state-*.json. Only Ray's
  ExperimentAnalysis.get_best_trial reads them; vidtune reads progress.csv
  (experiment.py) and the last result.
- the checkpoints its checkpoint manager has registered, each with the result it was
  reported with. vidtune's CheckpointKeeper keeps at most one checkpoint of a finished trial,
  so the manager keeps only its newest.

SlimFinished clears both when a trial ends (completed, stopped or errored). The last result,
the config and the error file, which experiment.py, the Optuna mirror and the live table
read, stay.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


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


class SlimFinished(Callback):
    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        slim(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        slim(trial)
