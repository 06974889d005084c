"""No idle cores: running trials take the CPUs that no trial can use.

Ray's CPU counts are bookkeeping; a trial uses as many cores as it has torch threads. At the
end of a search (or of a search with few samples) fewer trials run than there are slots,
and a trial holding 1 CPU leaves the other cores idle. So:

- ThreadSharer, a Tune callback on the driver, computes each running trial's fair share of
  its node's CPUs whenever no trial is waiting and the searcher will not start another one,
  and writes it to a ThreadBoard, a small named Ray actor.
- ThreadFollower, inside the trial (the adapter starts it), polls the board every second;
  the training loop reads it before every batch (core.loop.follow_threads).

Unlike Ray's ResourceChangingScheduler this needs no trial restart and keeps reuse_actors.
The cost: for up to a second after a new trial is queued, the trials that had extra threads
still use them (the sharer gives them back before Ray starts the new trial where it can).
docs/benchmarks.md measures both against fixed threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

import ray
from ray.tune import Callback

from vidtune.trainable.tune.budget import gate_closed

logger = logging.getLogger(__name__)

POLL_S = 1.0     # how often a trial asks the board
NODES_S = 10.0   # how often the driver re-reads the cluster's nodes


def board_name(experiment: str) -> str:
    return f"vidtune-threads-{experiment}"


@ray.remote(num_cpus=0)
class ThreadBoard:
    """trial_id -> torch threads it may use now (absent: its own CPUs)."""

    def __init__(self) -> None:
        self.threads: dict[str, int] = {}

    def set(self, threads: dict[str, int]) -> None:
        self.threads = dict(threads)

    def get(self, trial_id: str) -> int | None:
        return self.threads.get(trial_id)


def share_cpus(running: dict[str, tuple[str | None, int]], node_cpus: dict[str, float],
               more_coming: bool) -> dict[str, int]:
    """Threads per running trial: its own CPUs, plus an equal share of its node's idle ones.

    running:     trial_id -> (node id or None if not known yet, CPUs Ray gave it)
    node_cpus:   node id -> CPUs the node has
    more_coming: a trial is waiting or the searcher will start another one: no sharing, so
                 the next trial finds its CPUs free.
    """
    base = {t: max(1, cpus) for t, (_, cpus) in running.items()}
    if more_coming or not running or any(node is None for node, _ in running.values()):
        return base
    by_node: dict[str, list[str]] = defaultdict(list)
    for trial_id, (node, _) in sorted(running.items()):
        by_node[str(node)].append(trial_id)
    out = dict(base)
    for node, trial_ids in by_node.items():
        idle = int(node_cpus.get(node, 0)) - sum(running[t][1] for t in trial_ids)
        for i, trial_id in enumerate(trial_ids):   # the earlier trials take the remainder
            out[trial_id] += idle // len(trial_ids) + (1 if i < idle % len(trial_ids) else 0)
    return out


class ThreadSharer(Callback):
    """Driver side of the thread sharing (see the module docstring)."""

    def __init__(self, experiment: str, cpus_per_trial: float, num_samples: int) -> None:
        self.name = board_name(experiment)
        self.cpus = max(1, int(cpus_per_trial))
        self.num_samples = num_samples            # 0: no cap (a time budget ends the search)
        self._board: Any = None
        self._last: dict[str, int] = {}
        self._node_cpus: dict[str, float] = {}
        self._checked = 0.0
        self._nodes_read = -NODES_S

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_board": None, "_last": {}, "_node_cpus": {}, "_nodes_read": -NODES_S}

    def _ensure_board(self, now: float) -> Any:
        if self._board is None:   # lives as long as this driver
            self._board = ThreadBoard.options(  # type: ignore[attr-defined]
                name=self.name, get_if_exists=True).remote()
        if now - self._nodes_read > NODES_S:   # nodes come and go on a cluster
            self._node_cpus = {n["NodeID"]: n["Resources"].get("CPU", 0)
                               for n in ray.nodes() if n.get("Alive")}
            self._nodes_read = now
        return self._board

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._checked < POLL_S / 2:
            return
        self._checked = now
        board = self._ensure_board(now)
        # A trial's node is known from its first report; on a single node it is that one.
        only = next(iter(self._node_cpus)) if len(self._node_cpus) == 1 else None
        running = {t.trial_id: ((t.last_result or {}).get("node_id") or only, self.cpus)
                   for t in trials if t.status == "RUNNING"}
        waiting = any(t.status == "PENDING" for t in trials)
        capped = self.num_samples and len(trials) >= self.num_samples
        more_coming = waiting or (not capped and not gate_closed())
        shares = share_cpus(running, self._node_cpus, more_coming)
        shares = {t: n for t, n in shares.items() if n != self.cpus}   # only the raised ones
        if shares != self._last:
            board.set.remote(shares)
            self._last = shares
            if shares:
                logger.info("sharing idle CPUs: %s", shares)


class ThreadFollower:
    """Trial side: the thread count the board gives this trial, polled in the background."""

    def __init__(self, experiment: str, trial_id: str, base: int) -> None:
        self.value = self.base = max(1, base)
        self._stop = threading.Event()
        self._name, self._trial_id = board_name(experiment), trial_id
        self._thread = threading.Thread(target=self._poll, daemon=True, name="vidtune-threads")
        self._thread.start()

    def __call__(self) -> int:
        return self.value

    def _poll(self) -> None:
        board: Any = None
        got: int | None = None
        while not self._stop.wait(POLL_S):
            try:
                board = board or ray.get_actor(self._name)
                got = ray.get(board.get.remote(self._trial_id), timeout=5)
            except Exception:  # noqa: BLE001 - no board (fixed threads, or not yet): keep ours
                board, got = None, None
            self.value = self.base if got is None else int(got)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * POLL_S)
