"""MLflow tracking of a search (no Ray here): the tracking URI's check, the runs, the model.

    experiment "vidtune" (--mlflow-experiment)
      run <search name>          tags vidtune.role=search, vidtune.experiment_path; params: the
      |                          search config; artifacts vidtune.json, space.json; at the end
      |                          best_val_acc and the best trial's id, epoch and params
      +- run trial_<id>          tags vidtune.role=trial, vidtune.trial_id, vidtune.status;
      |                          params: the sampled config, gpu_share; metrics at step=epoch
      +- run retrain <id>        tags vidtune.role=retrain; the model (mlflow.pytorch) + val_acc
                                 (trainable/best/mlflow_model.py logs it)

Runs are found again by their tags, never remembered only in memory: a resumed search, a
driver that lost its state, or `retrain` days later all reach the same runs. The Ray side
(trainable/tune/mlflow_logger.py) calls these per trial event.

mlflow is an optional extra (pip install 'vidtune[mlflow]'): nothing imports it until a
command asks for --mlflow.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROLE, PATH, TRIAL, STATUS = "vidtune.role", "vidtune.experiment_path", "vidtune.trial_id", "vidtune.status"
PARENT = "mlflow.parentRunId"
NEEDS = "pip install 'vidtune[mlflow]'"
LOCAL_STORE = "--mlflow sqlite:////abs/path/mlflow.db (a local store, no server)"
ARTIFACTS = "mlartifacts"   # beside a SQLite store: the artifacts of its experiments
TIMEOUT_S = 5.0
# Per epoch, from a trial's report (core.trial.run_trial): the curves and what an epoch cost.
EPOCH_METRICS = ("val_acc", "val_loss", "train_loss", "epoch_time_s", "data_s", "cpu_threads",
                 "gpu_peak_mb")

# No usage reports from the mlflow package (it would try to reach its servers), and no retries
# for minutes against a server that is down: check_tracking_uri says so first.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_tracking_uri(uri: str) -> None:
    """Fail before Ray starts, naming the URI and the fix, when runs cannot be written there:
    no mlflow package, a SQLite store whose folder cannot be written, a server that does not
    answer. Then one call to the store: a new SQLite store gets its tables here (about 10 s),
    not while the search's first trials wait."""
    _check_reachable(uri)
    try:
        client(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure of the store is the user's to fix
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ValueError(f"MLflow tracking URI {uri!r} does not work as a tracking store "
                         f"({type(exc).__name__}: {first}); fix --mlflow, or use "
                         f"{LOCAL_STORE}") from None


def _check_reachable(uri: str) -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ValueError(f"--mlflow {uri} needs the mlflow package; install it with {NEEDS}") from None
    db = _sqlite_path(uri)
    if uri.startswith("sqlite:") and (db is None or not db.is_absolute()):
        raise ValueError(f"MLflow tracking URI {uri!r} is not an absolute SQLite path; write four "
                         "slashes before it, e.g. sqlite:////abs/path/mlflow.db")
    if db is not None:
        folder = db.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"MLflow tracking URI {uri!r} is unreachable: cannot create "
                             f"{folder} ({exc.strerror}); give a writable path") from None
        if not os.access(folder, os.W_OK):
            raise ValueError(f"MLflow tracking URI {uri!r} is unreachable: {folder} is not "
                             "writable; give a writable path")
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_S):
                pass
        except urllib.error.HTTPError:
            pass   # it answered: a server is there (a proxy or auth may still refuse a call)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ValueError(f"MLflow tracking URI {uri!r} is unreachable ({reason}); start the "
                             "server (mlflow server --host 127.0.0.1 --port 5000), fix --mlflow, "
                             f"or use {LOCAL_STORE}") from None
        return
    if "://" not in uri or uri.startswith("file:"):   # a file store: a folder
        folder = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
        if not folder.is_absolute():
            raise ValueError(f"MLflow tracking URI {uri!r} is a relative path; give an absolute "
                             f"one, or use {LOCAL_STORE}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"MLflow tracking URI {uri!r} is unreachable: cannot create "
                             f"{folder} ({exc.strerror}); give a writable path") from None


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(c: Any, uri: str, name: str) -> str:
    """The MLflow experiment `name`, created if needed (a SQLite store's artifacts go beside it:
    MLflow would put them in ./mlruns of whatever folder the command runs in)."""
    found = c.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    db = _sqlite_path(uri)
    location = (db.parent / ARTIFACTS).as_uri() if db is not None else None
    try:
        return str(c.create_experiment(name, artifact_location=location))
    except Exception:   # created meanwhile by another search
        found = c.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def find_runs(c: Any, exp_id: str, **tags: str) -> list[Any]:
    """Every run of the experiment with these tags (all pages), oldest first."""
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs, token = [], None
    while True:
        page = c.search_runs([exp_id], filter_string=query, max_results=1000, page_token=token,
                             order_by=["attributes.start_time ASC"])
        runs += list(page)
        token = page.token
        if not token:
            return runs


def search_run(c: Any, exp_id: str, experiment_path: str) -> Any | None:
    """The search's parent run, if it has one."""
    runs = find_runs(c, exp_id, **{ROLE: "search", PATH: experiment_path})
    return runs[0] if runs else None


def _params(d: dict[str, Any]) -> dict[str, str]:
    """MLflow params: strings of at most 6000 characters; nested values as JSON."""
    out = {}
    for k, v in d.items():
        text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
        out[k] = text[:6000]
    return out


def open_search_run(uri: str, experiment: str, name: str, experiment_path: str,
                    config: dict[str, Any], space: dict[str, Any]) -> tuple[str, str]:
    """(experiment id, parent run id): the search's run, created at its first start with the
    config and the space, set RUNNING again on a resume."""
    from mlflow.entities import Param

    c = client(uri)
    exp_id = experiment_id(c, uri, experiment)
    run = search_run(c, exp_id, experiment_path)
    if run is not None:
        c.update_run(run.info.run_id, status="RUNNING")
        return exp_id, run.info.run_id
    run = c.create_run(exp_id, run_name=name, tags={ROLE: "search", PATH: experiment_path})
    flat = {k: v for k, v in config.items() if k != "data"}
    flat.update({f"data.{k}": v for k, v in config.get("data", {}).items()})
    c.log_batch(run.info.run_id, params=[Param(k, v) for k, v in _params(flat).items()])
    c.log_dict(run.info.run_id, config, "vidtune.json")
    c.log_dict(run.info.run_id, space, "space.json")
    return exp_id, run.info.run_id


def finish_search_run(uri: str, experiment: str, experiment_path: str, *, best: dict[str, Any] | None,
                      num_trials: int, num_errors: int, interrupted: bool) -> None:
    """The search's end: the best (the highest val_acc any trial reached) and the counts.
    An interrupted search is KILLED until a resume sets it RUNNING again."""
    c = client(uri)
    found = c.get_experiment_by_name(experiment)
    run = search_run(c, str(found.experiment_id), experiment_path) if found is not None else None
    if run is None:
        return
    rid = run.info.run_id
    c.log_metric(rid, "trials", num_trials)
    c.log_metric(rid, "errored", num_errors)
    if best is not None:
        c.log_metric(rid, "best_val_acc", float(best["val_acc"]))
        c.set_tag(rid, "best_trial_id", str(best["trial_id"]))
        c.set_tag(rid, "best_epoch", str(best["epoch"]))
        c.set_tag(rid, "best_params", json.dumps(best.get("params", {}), sort_keys=True))
    c.set_terminated(rid, status="KILLED" if interrupted else "FINISHED")
