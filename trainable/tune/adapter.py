"""The thin Ray Tune function trainable: restore, wire run_trial's reports to tune.report.

Ray's FailureConfig retries every error a trial raises, so a config or data error would be
retried `max_failures` times from its checkpoint and fail the same way each time. Before
such an error (core.failures.is_deterministic) propagates, the trial reports it once as
{"error": one line}; the driver's NoRetry callback (fail_fast.py) sees that report and lets
Ray end the trial at its first failure. The trial still ends as Ray's ERROR, with Ray's
error.txt holding the traceback, so the searcher, the Optuna mirror and trials.csv all see an
errored trial. Transient faults (a killed worker, a lost node, CUDA OOM) keep Ray's retries (--max-failures).
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import replace
from typing import Any

import pyarrow.fs
import ray
from ray import tune

from vidtune.trainable.core.checkpoint import load_first_readable, save_state, sibling_checkpoints
from vidtune.trainable.core.failures import is_deterministic, one_line
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import limit_resources, run_trial
from vidtune.trainable.tune.threads import ThreadFollower

ERROR_KEY = "error"                  # a report carrying it: "this trial fails the same way on retry"
RESTORE_KEY = "restore_warning"      # on every report after a fallback to an older checkpoint


def _load_checkpoint(checkpoint: tune.Checkpoint) -> dict[str, Any] | None:
    """The state of the checkpoint Ray restores the trial from, or of the newest readable one
    beside it. The checkpoint may be gone: Ray's snapshot can be older than the trial's last
    checkpoints, and the checkpoint keeper deletes all but the newest two."""
    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):   # a local or shared path
        found = load_first_readable(sibling_checkpoints(checkpoint.path))
        return found[0] if found else None
    fs, path = checkpoint.filesystem, checkpoint.path
    assert fs is not None   # a Checkpoint resolves its filesystem in __init__
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:   # remote: the newest there
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path.rsplit("/", 1)[0], allow_not_found=True))
        newest = sorted(i.path for i in infos if i.type == pyarrow.fs.FileType.Directory
                        and i.base_name.startswith("checkpoint_"))
        if not newest:
            return None
        checkpoint = tune.Checkpoint(newest[-1], filesystem=fs)
    with checkpoint.as_directory() as folder:     # remote storage: only one is fetched
        found = load_first_readable([folder])
        if found is None:
            warnings.warn(f"checkpoint {checkpoint.path} is unreadable", stacklevel=2)
        return found[0] if found else None


def _restore_state() -> tuple[dict[str, Any] | None, str]:
    """The newest readable checkpoint of this trial (older ones if the newest is corrupt), and
    what went wrong on the way ("" if nothing): the worker's own log is not shown on the
    driver (log_to_driver=False), so the trial reports it instead."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = _load_checkpoint(checkpoint)
    notes = [str(w.message) for w in caught]
    if state is None:
        notes.append("no checkpoint of this trial is readable: it trains again from epoch 0")
    return state, "; ".join(notes)


def report_to_tune(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    """tune.report, with a checkpoint folder holding `state` when there is one."""
    if state is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        save_state(folder, state, metrics)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def tune_trainable(config: dict[str, Any], search: SearchConfig) -> None:
    if search.cpu_sharing == "restart":   # Ray may have restarted this trial with more CPUs
        cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", search.cpus_per_trial)
        search = replace(search, cpus_per_trial=float(cpus))
    device, grant = limit_resources(search)
    follower = ThreadFollower(search.name, tune.get_context().get_trial_id(), grant.cpu_threads) \
        if search.cpu_sharing == "threads" else None
    node_id = ray.get_runtime_context().get_node_id()
    started_at = time.time()   # float wall clock: Ray's own timestamp is whole seconds
    resume, restore_warning = _restore_state()
    extra = {RESTORE_KEY: restore_warning} if restore_warning else {}

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        report_to_tune({**metrics, **extra, "node_id": node_id, "started_at": started_at,
                        "reported_at": time.time()}, state)

    try:
        run_trial(config, search, report, resume=resume, device=device, grant=grant,
                  threads=follower)
    except Exception as exc:
        if is_deterministic(exc):
            # val_acc is there for Tune's strict metric check; no "epoch", so ASHA records nothing.
            tune.report({ERROR_KEY: one_line(exc), "val_acc": math.nan, **grant.metrics(), **extra,
                         "node_id": node_id, "started_at": started_at, "reported_at": time.time()})
        raise
    finally:
        if follower is not None:
            follower.stop()
