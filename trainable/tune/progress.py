"""What a running search prints: one progress line every 15 s, or Ray's full table (--verbose).

    [2m05s] trials: 5 done, 2 running, 5 left | best val_acc 0.8650 (trial 3f2a_00004) |
            budget 2m25s left | end in ~1m50s (14:07)

(one line on the terminal). "best" is BestSoFar's: the highest val_acc any trial reached at any epoch (Ray's
own "Current best trial" line shows the best trial's *last* epoch, which ASHA or a falling
curve can leave far below its best: the table's reporter drops that line and prints this one
above the table instead). The estimate of the end is end_estimate's, the rule tests check it.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback, CLIReporter, ProgressReporter

from vidtune.trainable.core.search_config import format_duration
from vidtune.trainable.tune import budget as budgets

REPORT_S = 15.0   # seconds between two reports, as Ray's table


def end_estimate(finished_s: Sequence[float], running_s: Sequence[float], left: int | None,
                 slots: int, budget_left_s: float = math.inf) -> float | None:
    """Seconds until the search ends, or None if nothing tells yet.

    A trial lasts what the median finished trial lasted (ASHA-stopped ones included: they are
    most of a search); a running trial needs what it lacks of that, or, once past it, of the
    longest finished trial (it was let through a rung); the trials left need all of it,
    `slots` at a time. left None: no cap on trials, the time budget ends the search. The time
    budget, if any, bounds the estimate.
    """
    if left is None or not finished_s:   # only the budget tells, if there is one
        return budget_left_s if math.isfinite(budget_left_s) else None
    typical, longest = statistics.median(finished_s), max(finished_s)

    def need(s: float) -> float:
        return next((t - s for t in (typical, longest) if t > s), 0.0)

    work = sum(need(s) for s in running_s) + left * typical
    return min(work / max(1, slots), budget_left_s)


@dataclass(frozen=True)
class Progress:
    """One report's figures."""

    elapsed_s: float
    done: int
    running: int
    left: int | None                # trials not yet started; None: the time budget decides
    best: tuple[float, str, int] | None  # (val_acc, trial id, epoch)
    budget_left_s: float = math.inf
    end_in_s: float | None = None

    def line(self, now: float | None = None) -> str:
        left = "left: as the budget allows" if self.left is None else f"{self.left} left"
        parts = [f"[{format_duration(self.elapsed_s)}] trials: {self.done} done, "
                 f"{self.running} running, {left}"]
        parts.append("best val_acc: none yet" if self.best is None
                     else f"best val_acc {self.best[0]:.4f} (trial {self.best[1]}, epoch {self.best[2]})")
        if math.isfinite(self.budget_left_s):
            parts.append(f"budget {format_duration(max(0.0, self.budget_left_s))} left")
        if self.end_in_s is not None and self.end_in_s < 1 and self.running:
            parts.append("end: any moment")   # running past every finished trial's time
        elif self.end_in_s is not None:
            at = time.strftime("%H:%M", time.localtime((now or time.time()) + self.end_in_s))
            parts.append(f"end in ~{format_duration(self.end_in_s)} ({at})")
        return " | ".join(parts)


# The best of this search so far, (val_acc, trial id, epoch): module-level, as budget._current,
# so that the reporter and the callback that keeps it agree after Tune restores both on resume.
_best: tuple[float, str, int] | None = None


class BestSoFar(Callback):
    """Keeps the highest val_acc any trial reported at any epoch (Ray's own per-trial maximum,
    metric_analysis, is dropped when a trial ends: slim.py). Saved with the experiment."""

    def setup(self, *args: Any, **kwargs: Any) -> None:
        global _best
        _best = getattr(self, "_restored", None)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        global _best
        value = result.get("val_acc")
        if isinstance(value, int | float) and math.isfinite(value) and not result.get("diverged") \
                and (_best is None or value > _best[0]):
            _best = (float(value), trial.trial_id, int(result.get("epoch") or 0))

    def get_state(self) -> dict | None:
        return {"best": _best}

    def set_state(self, state: dict) -> None:
        global _best
        best = state.get("best")
        self._restored = _best = None if best is None else (float(best[0]), str(best[1]), int(best[2]))


def progress_of(trials: list, num_samples: int, slots: int, elapsed_s: float) -> Progress:
    """The figures of Ray's trial list now (num_samples 0: no cap)."""
    done = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
    running = [t for t in trials if t.status == "RUNNING"]
    b = budgets._current
    budget_left = b.left() if b is not None else math.inf
    closed = b is not None and (b.closed or b.ended)
    left: int | None = max(0, num_samples - len(trials)) + len(trials) - len(done) - len(running) \
        if num_samples else None
    if closed:   # the budget lets no new trial start
        left = len(trials) - len(done) - len(running)

    def seconds(t) -> float:
        return float((t.last_result or {}).get("time_total_s") or 0.0)

    end_in = end_estimate([seconds(t) for t in done], [seconds(t) for t in running], left,
                          max(slots, len(running)), budget_left)
    return Progress(elapsed_s, len(done), len(running), left, _best, budget_left, end_in)


class ProgressLine(ProgressReporter):
    """The default: one line per report, on stdout."""

    def __init__(self, num_samples: int, slots: int) -> None:
        self.num_samples, self.slots = num_samples, slots
        self._started = time.monotonic()
        self._last = -math.inf

    def __setstate__(self, state: dict) -> None:   # restored on resume: this driver's clock
        self.__dict__.update(state, _started=time.monotonic(), _last=-math.inf)

    def should_report(self, trials: list, done: bool = False) -> bool:
        return done or time.monotonic() - self._last >= REPORT_S

    def report(self, trials: list, done: bool, *sys_info: str) -> None:
        self._last = time.monotonic()
        p = progress_of(trials, self.num_samples, self.slots, self._last - self._started)
        print(p.line(), file=sys.stdout, flush=True)


class TrialTable(CLIReporter):
    """--verbose: Ray's table, with the progress line in place of its "Current best trial"."""

    def __init__(self, num_samples: int, slots: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self._line = ProgressLine(num_samples, slots)

    def _current_best_trial(self, trials: list):   # its best trial's last epoch: not shown
        return None, None

    def _progress_str(self, trials: list, done: bool, *sys_info: str, fmt: str = "psql",
                      delim: str = "\n") -> str:
        p = progress_of(trials, self._line.num_samples, self._line.slots,
                        time.monotonic() - self._line._started)
        return p.line() + delim + super()._progress_str(trials, done, *sys_info, fmt=fmt,
                                                        delim=delim)
