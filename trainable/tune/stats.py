"""driver.jsonl: what the search driver's own bookkeeping costs, rewritten at every snapshot.

The driver's cost that grows with the number of trials is the experiment snapshot: Tune
writes every trial's state, the searcher and the callbacks' states to the experiment folder
(docs/scaling.md). It does so inside TuneController.step(), between its stopper's stop_all()
and the callbacks' on_step_end(); and only while it saves a snapshot does it ask the
callbacks for their state (get_state). So:

- SnapshotClock, the search's stopper (it never stops anything), notes when stop_all() ran;
- DriverStats, a callback, sees get_state() called (this step saves a snapshot) and on
  on_step_end() takes the time since stop_all() as the snapshot's duration.

Each snapshot rewrites driver.jsonl with one JSON line: trials (created), finished, snapshots
(this driver's), snapshot_s and snapshot_max_s (median and max of the last 20), cpu_s (the
driver's CPU time), rss_mb and peak_rss_mb (the driver's resident memory now and at its
peak). Not *.json: Ray copies the experiment folder's *.json over the originals on restore
(see budget.BUDGET_FILE). `vidtune resume` starts a new driver, whose figures replace these.
"""

from __future__ import annotations

import json
import logging
import resource
import statistics
import sys
import time
from collections import deque
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from vidtune.trainable.core.storage import write_text

logger = logging.getLogger(__name__)

DRIVER_FILE = "driver.jsonl"
RECENT = 20   # snapshots the median and max are taken over

# When the stopper's stop_all() last ran. Module-level, not an attribute: Tune pickles the
# stopper with every snapshot and a resumed search runs the unpickled copy.
_stop_all_at: float | None = None


class SnapshotClock(Stopper):
    """A stopper that stops nothing; its stop_all() runs just before Tune's snapshot."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        global _stop_all_at
        _stop_all_at = time.perf_counter()
        return False


def rss_mb() -> tuple[float, float]:
    """(resident memory now, peak) of this process in MB; now is the peak where /proc is absent."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20, peak
    except (OSError, ValueError, IndexError):
        return peak, peak


class DriverStats(Callback):
    """Writes driver.jsonl after every experiment snapshot (see the module docstring)."""

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self._saving = False
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._count = 0
        self._finished: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment_path": self.experiment_path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["experiment_path"])  # type: ignore[misc]

    def get_state(self) -> dict | None:
        self._saving = True   # Tune is saving a snapshot
        return None           # nothing to restore: a resumed driver measures itself

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._finished is not None:
            self._finished += 1

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_trial_complete(iteration, trials, trial)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._saving:
            return
        self._saving = False
        if _stop_all_at is None:
            return
        self._recent.append(time.perf_counter() - _stop_all_at)
        self._count += 1
        if self._finished is None:   # once per driver; then counted as trials end
            self._finished = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        now, peak = rss_mb()
        line = {"trials": len(trials), "finished": self._finished, "snapshots": self._count,
                "snapshot_s": round(statistics.median(self._recent), 5),
                "snapshot_max_s": round(max(self._recent), 5),
                "cpu_s": round(time.process_time(), 3), "rss_mb": round(now, 1),
                "peak_rss_mb": round(peak, 1), "time": round(time.time(), 3)}
        try:
            write_text(self.experiment_path, DRIVER_FILE, json.dumps(line) + "\n")
        except OSError as exc:
            logger.warning("could not write %s: %s", DRIVER_FILE, exc)
