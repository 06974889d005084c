"""Stand-ins for the one Ray object the rule tests need: a trial's storage.

The rule tests run Ray's real ASHA and vidtune's real Optuna mirror without starting Ray; all
they need from a trial is its id, its results and where its experiment folder is, which
Ray 2.60 gives as trial.storage (a pyarrow filesystem and the folder's path on it).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyarrow.fs


def storage(experiment_path: str, fs: Any = None) -> SimpleNamespace:
    """Ray's StorageContext as the scheduler and the mirror read it (local unless `fs`)."""
    return SimpleNamespace(storage_filesystem=fs or pyarrow.fs.LocalFileSystem(),
                           experiment_fs_path=experiment_path)
