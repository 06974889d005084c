"""MLflow tracking and the live view against the real things: a local MLflow store (SQLite,
file artifacts) read back with MlflowClient, optuna-dashboard's HTTP API on loopback, a real
SIGKILL of the search driver and its resume, and the retrained model loaded with
mlflow.pytorch.load_model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from _helpers import after_next_snapshot, progress, vidtune

from vidtune.trainable.core import tracking
from vidtune.trainable.core.tracking import check_tracking_uri

NUM_SAMPLES, MAX_EPOCHS = 4, 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_tracking_uri_is_an_error_before_ray_starts(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    started = time.monotonic()
    done = vidtune("search", "--smoke-test", "--mlflow", uri, "--results-dir", str(tmp_path),
                   "--name", "s", timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = [x for x in done.stderr.splitlines() if "error:" in x]
    assert uri in line and "unreachable" in line and "mlflow server" in line and "sqlite:////" in line
    assert "Ray" not in done.stderr and not (tmp_path / "s").exists()
    assert time.monotonic() - started < 60


def test_a_relative_or_unwritable_store_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"'sqlite:///mlflow.db' is not an absolute SQLite path; write four slashes"):
        check_tracking_uri("sqlite:///mlflow.db")
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() != 0:   # root writes anywhere: only a file in the way stops it
        with pytest.raises(ValueError, match="is not writable"):
            check_tracking_uri(f"sqlite:///{tmp_path}/ro/mlflow.db")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"cannot create .*file"):
        check_tracking_uri(f"sqlite:///{tmp_path}/file/mlflow.db")


def api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def running_in_dashboard(port: int) -> list[dict]:
    """The trials optuna-dashboard shows as Running with at least one epoch's val_acc."""
    studies = api(port, "/api/studies")["study_summaries"]
    trials = api(port, f"/api/studies/{studies[0]['study_id']}?after=0")["trials"] if studies else []
    return [t for t in trials if t["state"] == "Running" and t["intermediate_values"]]


def wait_for(what: str, check, proc: subprocess.Popen, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"the search ended before {what}"
        try:
            got = check()
        except OSError:   # the dashboard is still starting
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"no {what} in {timeout} s")


@pytest.mark.slow
def test_search_tracked_live_killed_resumed_and_its_model_logged(tmp_path, cache_dir):
    db = tmp_path / "mlflow" / "mlflow.db"
    uri = f"sqlite:///{db}"
    experiment = tmp_path / "results" / "m"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Grace 2: ASHA decides nothing at epoch 1, so a trial with one epoch is surely running.
    cmd = [sys.executable, "-m", "vidtune.scripts.cli", "search", "--space", "tiny",
           "--num-samples", str(NUM_SAMPLES), "--max-epochs", str(MAX_EPOCHS), "--grace-period", "2",
           "--reduction-factor", "2", "--num-cpus", "2", "--results-dir", str(tmp_path / "results"),
           "--name", "m", "--num-clips", "2000", "--frames", "8", "--height", "24", "--width", "24",
           "--noise", "0.2", "--cache-dir", cache_dir, "--mlflow", uri]
    log = open(tmp_path / "search.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    port, dashboard = free_port(), None
    try:
        # The live view: `vidtune dashboard` on the mirror, while trials run.
        wait_for("optuna.db", lambda: (experiment / "optuna.db").exists(), proc)
        dashboard = subprocess.Popen([sys.executable, "-m", "vidtune.scripts.cli", "dashboard",
                                      str(experiment), "--port", str(port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        live = wait_for("running trial with an epoch in the dashboard",
                        lambda: running_in_dashboard(port), proc)
        assert all(t.get("values") is None and t["intermediate_values"][0]["step"] == 1 for t in live)

        # The kill: while a trial runs, just after a snapshot (what a kill can lose is bounded).
        # Running as the live view says, with one epoch in and two to go (an epoch takes seconds
        # here): the resumed driver runs at least one more, whatever the worker finished first.
        # A trial short of its last epoch in progress.csv may be one ASHA stopped: not enough.
        def mid_run() -> bool:
            return any(max(v["step"] for v in t["intermediate_values"]) == 1
                       for t in running_in_dashboard(port))
        while True:
            wait_for("trial mid-run", mid_run, proc)
            after_next_snapshot(proc, experiment)
            if mid_run():
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)   # the driver and its embedded Ray
        proc.wait()
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(timeout=30)

    resumed = subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", "resume", str(experiment)],
                             capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    # The progress line, not Ray's table, and its best is the best any epoch reached.
    lines = [x for x in resumed.stdout.splitlines() if "] trials: " in x]
    assert lines and "Current best trial" not in resumed.stdout and "+--" not in resumed.stdout

    from mlflow import MlflowClient

    from vidtune.trainable.tune.experiment import load_experiment

    exp = load_experiment(experiment)
    c = MlflowClient(uri)
    exp_id = c.get_experiment_by_name("vidtune").experiment_id
    [parent] = tracking.find_runs(c, exp_id, **{tracking.ROLE: "search"})
    assert parent.info.status == "FINISHED" and parent.data.tags[tracking.PATH] == str(experiment)
    best = json.loads((experiment / "best.json").read_text())
    assert parent.data.metrics["best_val_acc"] == pytest.approx(best["val_acc"])
    assert parent.data.tags["best_trial_id"] == best["trial_id"]
    assert parent.data.params["num_samples"] == str(NUM_SAMPLES)
    children = tracking.find_runs(c, exp_id, **{tracking.PARENT: parent.info.run_id})
    ids = [r.data.tags[tracking.TRIAL] for r in children]
    assert len(ids) == len(set(ids)), f"a trial has two runs: {ids}"
    kept = {r.data.tags[tracking.TRIAL]: r for r in children if r.info.status != "KILLED"}
    assert sorted(kept) == sorted(exp.trials["trial_id"]), "one run per trial of the search"

    runs = progress(experiment)
    two_drivers = [name for name, df in runs.items() if df["started_at"].nunique() > 1]
    assert two_drivers, "no trial ran in both drivers; the test proved nothing"
    statuses = dict(zip(exp.trials["trial_id"], exp.trials["status"], strict=True))
    for trial_id, run in kept.items():
        df = runs[f"trial_{trial_id}"].drop_duplicates("epoch", keep="last")
        history = c.get_metric_history(run.info.run_id, "val_acc")
        steps = [m.step for m in history]
        # Every epoch once. progress.csv can lack one: the epoch whose checkpoint the trial
        # saved just before the kill, whose report the killed driver never took in. MLflow
        # has it from that checkpoint.
        warned = [x for x in (tmp_path / "search.log").read_text().splitlines() + resumed.stderr.splitlines()
                  if "MLflow" in x]
        assert sorted(steps) == list(range(1, int(df["epoch"].max()) + 1)), (trial_id, steps, warned)
        logged = {m.step: m.value for m in history}
        assert [logged[int(e)] for e in df["epoch"]] == pytest.approx(df["val_acc"].tolist())
        assert run.info.status == "FINISHED"
        assert run.data.tags[tracking.STATUS].startswith(
            "stopped by ASHA at rung 1" if statuses[trial_id] == "stopped" else statuses[trial_id])
        assert run.data.params["gpu_share"] == "0.0" and run.data.metrics["s_per_epoch"] > 0

    # retrain logs the model; mlflow.pytorch.load_model gives it back, and it predicts as
    # vidtune's own model folder does, at a batch size it was not traced with.
    import mlflow.pytorch

    from vidtune.trainable.best.artifact import load_artifact
    from vidtune.trainable.best.retrain import retrain_best

    out = retrain_best(experiment, epochs=1, out=tmp_path / "model")
    assert out.mlflow_model
    loaded = mlflow.pytorch.load_model(out.mlflow_model)
    model, config = load_artifact(tmp_path / "model")
    d = config["data"]
    clips = torch.rand(3, d["frames"], 3, d["height"], d["width"]) * 2 - 1   # (B, T, C, H, W)
    with torch.no_grad():
        assert torch.allclose(loaded(clips), model(clips), atol=1e-5)
    [retrained] = tracking.find_runs(c, exp_id, **{tracking.ROLE: "retrain"})
    assert retrained.data.metrics["val_acc"] == pytest.approx(out.metrics["val_acc"])
    assert retrained.data.tags[tracking.PARENT] == parent.info.run_id


def test_a_resumed_run_is_the_same_run_and_gets_the_epochs_the_killed_driver_missed(tmp_path):
    """The callback as Tune calls it, on a real SQLite store, with a stand-in trial. The killed
    driver logged epoch 1. progress.csv also has epoch 2 (the kill came between the two
    loggers), and the trial's checkpoint has epoch 3 (its report never reached the driver).
    The resumed trial then reports epoch 4."""
    import pickle
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from vidtune.trainable.tune.mlflow_logger import MlflowTrials

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = tmp_path / "trial_t0"
    (folder / "checkpoint_000002").mkdir(parents=True)
    trial = SimpleNamespace(trial_id="t0", config={"lr": 0.01}, path=str(folder), status="RUNNING",
                            last_result={})

    def report(epoch: int) -> dict:
        return {"epoch": epoch, "val_acc": epoch / 10, "epoch_time_s": 1.0, "gpu_share": 0.5}

    first = MlflowTrials(uri, "vidtune", "s", str(tmp_path), {"num_samples": 2}, {}, 4, 1, 3.0)
    first.setup()
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, report(1))
    (folder / "progress.csv").write_text("epoch,val_acc\n1,0.1\n2,0.2\n")
    (folder / "checkpoint_000002" / "metrics.json").write_text(json.dumps(report(3)))

    second = pickle.loads(pickle.dumps(first))   # as Tune restores it
    second.setup()
    second.on_step_begin(0, [trial])
    second.log_trial_start(trial)
    second.log_trial_result(1, trial, report(3))   # a repeated report: not logged twice
    second.log_trial_result(2, trial, report(4))
    trial.last_result = report(4)
    second.log_trial_end(trial)

    c = MlflowClient(uri)
    exp_id = c.get_experiment_by_name("vidtune").experiment_id
    [parent] = tracking.find_runs(c, exp_id, **{tracking.ROLE: "search"})
    [run] = tracking.find_runs(c, exp_id, **{tracking.PARENT: parent.info.run_id})
    history = c.get_metric_history(run.info.run_id, "val_acc")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]
    assert run.info.status == "FINISHED" and run.data.tags[tracking.STATUS] == "completed"
    assert run.data.params == {"lr": "0.01", "gpu_share": "0.5"}
