"""Failing fast: a trial whose error cannot pass on a retry, a storage that disappears.

NoRetry: a trial whose error cannot pass on a retry ends at its first failure.

Ray 2.60 retries every error of a function trainable: TuneController._process_trial_failure
asks Trial.should_recover(), which only compares the trial's failure count with its
`max_failures` (FailureConfig). Ray's own "do not retry" error (_AbortTrialExecution) is
honoured only for errors the controller raises itself, not for one a trainable raises.

So the trainable reports a deterministic error once before raising it (adapter.ERROR_KEY),
and this callback, which Tune runs before it asks the trial for its next result, sets that
trial's max_failures to 0. The error that follows ends the trial as ERROR at once, through
Ray's normal path: error.txt with the traceback, the searcher told error=True (Optuna FAIL),
the scheduler's and the callbacks' on_trial_error. A trial that starts again (a resumed
search) gets the configured max_failures back.
"""

from __future__ import annotations

import time

import pyarrow.fs
from ray.tune import Callback

from vidtune.trainable.tune.adapter import ERROR_KEY


class NoRetry(Callback):
    def __init__(self, max_failures: int) -> None:
        self.max_failures = max_failures

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        trial.max_failures = self.max_failures

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if result.get(ERROR_KEY):
            trial.max_failures = 0


class StorageLostError(RuntimeError):
    """The experiment folder vanished while the search ran (a deleted folder, a lost mount)."""


class StorageWatch(Callback):
    """Stops the search when its experiment folder loses vidtune.json, every `every_s` seconds.

    Without it, a storage that disappears mid-search makes every trial fail to save its
    checkpoint ("Unable to set up cluster storage"), each retried max_failures times, and Ray
    quietly writes a fresh experiment folder without the search's config. The file is checked
    on Ray's own filesystem and path of the folder, so a storage URI is watched too.
    """

    def __init__(self, marker: str, every_s: float = 5.0) -> None:
        self.marker, self.every_s = marker, every_s
        self._next = 0.0

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        if not trials or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every_s
        storage = trials[0].storage
        path = f"{storage.experiment_fs_path}/{self.marker}"
        try:
            gone = storage.storage_filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound
        except OSError:   # an unreachable store
            gone = True
        if gone:
            raise StorageLostError(
                f"the search's storage lost {path} mid-search (deleted, unmounted or "
                "unreachable); make the folder available again and continue with `vidtune "
                "resume`, or start a new search")
