"""One set of experiment snapshot files, however often a search is resumed.

Each Tune driver session writes its own snapshot files, named by the session's start time:
experiment_state-<session>.json (every trial's state), searcher-state-<session>.pkl,
callback-states-<session>.pkl and search_gen_state-<session>.json. A resumed search starts a
new session and restores from the newest files; the older sessions' files are never read
again. But Ray copies every *.json and *.pkl of the experiment folder into the driver's
staging folder on restore (_ExperimentCheckpointManager.sync_down_experiment_state), and every
snapshot copies that staging folder back to the storage: each earlier session's snapshot,
as large as the search was then, was written again at every snapshot of every later session,
and kept on disk.

DropStaleSnapshots removes the earlier sessions' files, from the staging folder and from the
storage, once this session's own snapshot is in the storage (same size as in staging). This
session's files are those written since the driver started, found in the staging folder,
which is on the driver's own disk and clock.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray.tune import Callback

logger = logging.getLogger(__name__)

FAMILIES = ("experiment_state-{}.json", "searcher-state-{}.pkl", "callback-states-{}.pkl",
            "search_gen_state-{}.json")
_SESSION = re.compile("|".join(re.escape(f).replace(r"\{\}", "(.+)") for f in FAMILIES))


def session_of(name: str) -> str | None:
    """The session a snapshot file belongs to ('2026-11-27_07-59-24'); None for other files."""
    m = _SESSION.fullmatch(name)
    return next((g for g in m.groups() if g is not None), None) if m else None


def stale_files(names: list[str], session: str) -> list[str]:
    """The snapshot files among names that belong to another session than `session`."""
    return sorted(n for n in names if session_of(n) not in (None, session))


class DropStaleSnapshots(Callback):
    """Removes earlier sessions' snapshot files (see the module docstring)."""

    TRIES = 3   # snapshots it looks at: a sync under way can put a file back once

    def __init__(self) -> None:
        self._started = time.time()
        self._saving = False
        self._tries = 0

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def get_state(self) -> dict | None:
        self._saving = True   # Tune is saving a snapshot in this step
        return None

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._saving or not trials or self._tries >= self.TRIES:
            return
        self._saving = False
        storage = trials[0].storage
        staging = Path(storage.experiment_driver_staging_path)
        try:
            names = [e.name for e in os.scandir(staging) if e.is_file()]
            mine = {s for n in names if (s := session_of(n)) is not None
                    and os.stat(staging / n).st_mtime >= self._started - 1}
        except OSError:
            return
        if len(mine) != 1:   # this session's snapshot is not written yet, or unclear: keep all
            return
        (session,) = mine
        fs, folder = storage.storage_filesystem, storage.experiment_fs_path
        state = FAMILIES[0].format(session)
        try:
            uploaded = fs.get_file_info(f"{folder}/{state}")
            if uploaded.type != pyarrow.fs.FileType.File or uploaded.size != os.stat(staging / state).st_size:
                return   # not in the storage yet: the earlier session's files are the fallback
            self._tries += 1
            for name in stale_files(names, session):
                os.remove(staging / name)
            listed = fs.get_file_info(pyarrow.fs.FileSelector(folder))
            for name in stale_files([i.base_name for i in listed], session):
                fs.delete_file(f"{folder}/{name}")
        except OSError as exc:
            logger.warning("could not remove earlier sessions' snapshot files: %s", exc)
