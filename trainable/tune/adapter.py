"""The thin Ray Tune function trainable: restore, wire run_trial's reports to tune.report."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune

from vidtune.trainable.core.checkpoint import load_first_readable, save_state, sibling_checkpoints
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import limit_resources, run_trial
from vidtune.trainable.tune.threads import ThreadFollower


def _restore_state() -> dict[str, Any] | None:
    """The newest readable checkpoint of this trial (older ones if the newest is corrupt)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    if Path(checkpoint.path).is_dir():             # local or shared-filesystem storage
        found = load_first_readable(sibling_checkpoints(checkpoint.path))
        return found[0] if found else None
    with checkpoint.as_directory() as folder:     # remote storage: only the newest is fetched
        found = load_first_readable([folder])
        return found[0] if found else None


def tune_trainable(config: dict[str, Any], search: SearchConfig) -> None:
    device, grant = limit_resources(search)
    follower = None if search.fixed_threads else ThreadFollower(
        search.name, tune.get_context().get_trial_id(), grant.cpu_threads)
    node_id = ray.get_runtime_context().get_node_id()
    started_at = time.time()   # float wall clock: Ray's own timestamp is whole seconds

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        metrics = {**metrics, "node_id": node_id, "started_at": started_at, "reported_at": time.time()}
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_state(folder, state, metrics)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    try:
        run_trial(config, search, report, resume=_restore_state(), device=device, grant=grant,
                  threads=follower)
    finally:
        if follower is not None:
            follower.stop()
