"""--time-budget: a search that proposes trials while they can still pay off, then stops.

- Budget holds this run's clock: the budget, the seconds earlier runs of the same search
  spent (restored on resume), and whether new trials may still start.
- BudgetKeeper, a Tune callback, closes the gate when the time left is shorter than a new
  trial needs to reach its first ASHA rung (the median over the trials so far), and ends the
  run as Ctrl-C does once the budget is spent, or once the gate is closed and no trial is
  left running. Running trials are saved and `vidtune resume` continues them.
- BudgetedSearch is Tune's SearchGenerator with the gate in front of the searcher.

Ending the run: Tune installs a handler for SIGUSR1 that does what the first Ctrl-C does (set
its "experiment interrupted" event, save the experiment, return from fit()); the keeper sends
that signal to its own process. The event is only looked at between steps, and a step with
no live trial waits up to 600 s for the searcher to propose one, so BudgetedSearch also says
it is finished once the budget has ended the run. That is not saved with the experiment
(Tune saves its own `finished` flag, which stays False), so a resume can search on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import statistics
import sys
import time
from typing import Any

from ray.tune import Callback
from ray.tune.search import SearchGenerator

from vidtune.trainable.core.search_config import format_duration
from vidtune.trainable.core.storage import write_text

logger = logging.getLogger(__name__)

# Not *.json: on restore Ray copies every .json and .pkl of the experiment folder into its
# staging folder and copies them back over the originals at every sync, which would put the
# first run's numbers back. One JSON line, rewritten at every experiment snapshot.
BUDGET_FILE = "budget.jsonl"


class Budget:
    """The wall-time budget of a search, as this driver sees it."""

    def __init__(self, total_s: float, spent_before_s: float = 0.0) -> None:
        self.total_s = total_s                 # 0: no budget
        self.spent_before_s = spent_before_s   # by earlier runs of this search (resume)
        self.started = time.monotonic()
        self.closed = False                    # no new trial may start
        self.ended = False                     # the run was ended by the budget

    def spent(self) -> float:
        return self.spent_before_s + time.monotonic() - self.started

    def left(self) -> float:
        return self.total_s - self.spent() if self.total_s else float("inf")


# The budget of the search this driver runs. Module-level, not an attribute of the searcher:
# Tune pickles the searcher with every snapshot and restores that copy on resume, and the
# restored copy must see this run's budget, not the first run's.
_current: Budget | None = None


def set_current(budget: Budget | None) -> None:
    global _current
    _current = budget


def end(b: Budget) -> None:
    """The budget ends the run: said once, then Tune's own graceful stop (as Ctrl-C)."""
    if b.ended:
        return
    b.ended = True
    print(f"time budget of {format_duration(b.total_s)} spent: stopping as Ctrl-C does",
          file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGUSR1)   # Tune's own graceful-stop signal


class BudgetedSearch(SearchGenerator):
    """Tune's SearchGenerator, proposing nothing while this run's budget gate is closed.

    Once the gate is closed and the last trial has ended, the run ends here too, not only in
    BudgetKeeper.on_step_begin: with no trial left, Tune waits for the searcher's next trial
    inside its trial queue (up to 600 s, ray/tune/execution/tune_controller.py
    _update_trial_queue) without stepping the callbacks, asking only is_finished().
    """

    def next_trial(self) -> Any:
        if _current is not None and _current.closed:
            return None
        return super().next_trial()

    def is_finished(self) -> bool:
        b = _current
        if b is not None and b.closed and not getattr(self.searcher, "live_trials", True):
            end(b)   # the ConcurrencyLimiter's live trials: none left
        return super().is_finished() or (b is not None and b.ended)


def time_to_first_rung(trials: list, grace_period: int) -> float | None:
    """Median seconds the trials so far took to report epoch `grace_period`; None before any."""
    times = [float(t.last_result.get("time_total_s", 0)) * grace_period / max(1, t.last_result["epoch"])
             for t in trials if t.last_result and t.last_result.get("epoch")]
    return statistics.median(times) if times else None


def gate_closed() -> bool:
    """May the searcher start no more trials (for the thread sharing)?"""
    return _current is not None and _current.closed


class BudgetKeeper(Callback):
    """Tune pickles its callbacks with the experiment and restores those copies on resume, so
    the keeper holds no budget itself: it acts on this run's (set_current).

    Tune runs a step for every trial event, many a second; the gate's figures look at every
    trial so far, so they are worked out at most every CHECK_S seconds (a gate a second late
    costs nothing; a scan of 100,000 trials per step would stall the driver)."""

    CHECK_S = 1.0

    def __init__(self, grace_period: int, experiment_path: str) -> None:
        self.grace_period = grace_period
        self.experiment_path = experiment_path

    @property
    def budget(self) -> Budget:
        return _current or Budget(0.0)

    def get_state(self) -> dict | None:
        """Called with every experiment snapshot: the time spent goes to budget.jsonl, which
        `vidtune resume` reads before Ray starts (it restores the spent seconds from there)."""
        try:
            write_text(self.experiment_path, BUDGET_FILE, json.dumps(
                {"total_s": self.budget.total_s, "spent_s": round(self.budget.spent(), 1)}) + "\n")
        except OSError as exc:
            logger.warning("could not write %s: %s", BUDGET_FILE, exc)
        return None

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        b = self.budget
        if not b.total_s or b.ended:
            return
        now = time.monotonic()
        if now - self.__dict__.get("_checked", -math.inf) < self.CHECK_S and b.left() > 0:
            return
        self._checked = now
        need = time_to_first_rung(trials, self.grace_period) or 0.0
        if not b.closed and b.left() < need:
            b.closed = True
            print(f"time budget: {format_duration(b.left())} left, a new trial needs about "
                  f"{format_duration(need)} to reach its first rung: no new trials",
                  file=sys.stderr, flush=True)
        live = any(t.status in ("RUNNING", "PENDING") for t in trials)
        if b.left() <= 0 or (b.closed and not live and trials):
            end(b)
