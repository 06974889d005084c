"""NoRetry: a trial whose error cannot pass on a retry ends at its first failure.

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
