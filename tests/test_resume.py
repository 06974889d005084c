"""Interruptions with real processes: SIGKILL the search driver and resume; kill a trial worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from _helpers import after_next_snapshot, progress

from vidtune.trainable.core.checkpoint import load_first_readable, save_state, sibling_checkpoints
from vidtune.trainable.core.lease import LEASE_FILE

pytestmark = pytest.mark.slow

NUM_SAMPLES, MAX_EPOCHS = 8, 5


def search_cmd(tmp_path: Path, cache_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidtune.scripts.cli", "search", "--space", "tiny",
            "--num-samples", str(NUM_SAMPLES), "--max-epochs", str(MAX_EPOCHS),
            "--grace-period", "1", "--reduction-factor", "2", "--num-cpus", "2",
            "--results-dir", str(tmp_path / "results"), "--name", "r",
            "--num-clips", "1200", "--frames", "8", "--height", "24", "--width", "24",
            "--noise", "0.2", "--cache-dir", cache_dir, *extra]


def run_until(proc: subprocess.Popen, experiment: Path, ready, timeout: float = 240) -> dict[str, pd.DataFrame]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the search ended before it could be interrupted"
        runs = progress(experiment)
        if ready(runs):
            return runs
        time.sleep(0.2)
    raise AssertionError(f"condition not reached in {timeout}s: {list(progress(experiment))}")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_DEDUP_LOGS": "0"}


def test_sigkill_driver_then_resume(tmp_path, cache_dir):
    experiment = tmp_path / "results" / "r"
    log = open(tmp_path / "search.log", "w")
    # Grace 2: ASHA decides nothing at epoch 1, so every trial is surely running between its
    # first and second report: a kill moment that does not hang on which trials ASHA stops.
    proc = subprocess.Popen(search_cmd(tmp_path, cache_dir, "--grace-period", "2"), stdout=log,
                            stderr=subprocess.STDOUT,
                            env=env(), start_new_session=True)

    def mid_run(runs: dict[str, pd.DataFrame]) -> bool:
        done = [df for df in runs.values() if df["epoch"].max() >= MAX_EPOCHS]
        # ASHA stops trials only at its rungs (or at MAX_EPOCHS), and it writes each rung decision
        # before Tune logs the row: a trial below MAX_EPOCHS that was not stopped is still running.
        decisions = experiment / "asha_decisions.jsonl"
        lines = decisions.read_text().splitlines() if decisions.exists() else []
        records = [json.loads(line) for line in lines if line.endswith("}")]   # skip a half-written line
        stopped = {"trial_" + r["trial_id"] for r in records if r["action"] == "STOP"}
        running = [name for name, df in runs.items() if df["epoch"].max() < MAX_EPOCHS and name not in stopped]
        return len(done) >= 1 and len(running) >= 1 and len(runs) < NUM_SAMPLES

    try:
        while True:
            run_until(proc, experiment, mid_run)
            after_next_snapshot(proc, experiment)   # what the kill may lose is bounded by the snapshot
            # A trial may have ended (or met ASHA's rule) while the snapshot was awaited: kill
            # only while one still runs, else wait for the next such moment.
            before = progress(experiment)
            if mid_run(before):
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)   # the driver and its embedded Ray: a lost machine
        proc.wait()

    # The killed driver left its lease behind; the resume at once takes it over (a dead pid on
    # this machine) and gives it back when it is done.
    assert json.loads((experiment / LEASE_FILE).read_text())["pid"] == proc.pid
    resumed = subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", "resume", str(experiment)],
                             capture_output=True, text=True, env=env(), timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "best val_acc" in resumed.stdout
    assert f"took over the lease of {experiment} from `vidtune search`, pid {proc.pid} on host " \
           f"{socket.gethostname()}" in resumed.stderr and "its process is gone" in resumed.stderr
    assert not (experiment / LEASE_FILE).exists()

    after = progress(experiment)
    params = [json.loads((experiment / name / "params.json").read_text()) for name in after]
    assert len(after) == NUM_SAMPLES, f"{len(after)} trials, expected exactly {NUM_SAMPLES}"
    assert len({json.dumps(p, sort_keys=True) for p in params}) == NUM_SAMPLES, "a config was repeated"

    # No result lost: every row any trial reported before the kill is still there.
    for name, df in before.items():
        assert after[name]["val_acc"].iloc[: len(df)].tolist() == df["val_acc"].tolist()
        if df["epoch"].max() == MAX_EPOCHS:     # finished before the kill: not run again
            assert after[name]["started_at"].nunique() == 1

    # Trials that ran in two driver sessions continued from their checkpoint, not epoch 0.
    two_sessions = {name: df for name, df in after.items() if df["started_at"].nunique() > 1}
    assert two_sessions, "no trial was running at the kill; the test proved nothing"
    for name, df in two_sessions.items():
        second = df[df["started_at"] == df["started_at"].unique()[-1]]
        assert second["epoch"].iloc[0] > 1, f"{name} restarted from scratch:\n{df[['epoch', 'started_at']]}"
        assert df["epoch"].max() <= MAX_EPOCHS

    # ASHA's rungs came back: no trial is recorded twice at a milestone (a fresh ASHA would
    # record resumed trials again), and the resumed driver's first decision at each milestone
    # saw at least the rung records that were checkpointed before the kill.
    lines = [json.loads(line) for line in (experiment / "asha_decisions.jsonl").read_text().splitlines()]
    drivers = list(dict.fromkeys(line["driver_pid"] for line in lines))
    assert len(drivers) == 2, "decisions from both drivers expected"
    pairs = [(line["trial_id"], line["milestone"]) for line in lines]
    dupes = {p for p in pairs if pairs.count(p) > 1}
    first_driver = [line for line in lines if line["driver_pid"] == drivers[0]]
    for line in (line for line in lines if line["driver_pid"] == drivers[1]):
        earlier = {line_["trial_id"] for line_ in first_driver if line_["milestone"] == line["milestone"]}
        lost = {t for t, m in dupes if m == line["milestone"]}   # recorded after the last snapshot
        assert line["rung_size"] >= len(earlier - lost), (line, earlier, lost)

    # The Optuna study in SQLite is consistent: every trial once, states match the results.
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{experiment / 'optuna.db'}")
    ray_ids = [t.user_attrs["ray_trial_id"] for t in study.trials]
    assert sorted(ray_ids) == sorted(name.removeprefix("trial_") for name in after)
    for t in study.trials:
        df = after["trial_" + t.user_attrs["ray_trial_id"]]
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == pytest.approx(df["val_acc"].iloc[-1])
            assert df["epoch"].max() == MAX_EPOCHS
        else:
            assert t.state == optuna.trial.TrialState.PRUNED and df["epoch"].max() < MAX_EPOCHS


def test_killed_trial_worker_resumes_from_checkpoint(tmp_path, cache_dir):
    experiment = tmp_path / "results" / "r"
    cmd = search_cmd(tmp_path, cache_dir, "--max-concurrent", "1", "--grace-period", str(MAX_EPOCHS))
    cmd[cmd.index("--num-samples") + 1] = "1"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
                            start_new_session=True)
    try:
        runs = run_until(proc, experiment, lambda r: any(df["epoch"].max() >= 2 for df in r.values()))
        (name, df), = runs.items()
        os.kill(int(df["pid"].iloc[-1]), signal.SIGKILL)   # the trial's worker, mid-epoch
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    df = progress(experiment)[name]
    assert df["pid"].nunique() == 2, "the trial should have run in a second worker"
    second = df[df["pid"] == df["pid"].iloc[-1]]
    assert second["epoch"].iloc[0] >= 3, f"restarted from scratch:\n{df[['epoch', 'pid']]}"
    assert df["epoch"].max() == MAX_EPOCHS
    assert df["epoch"].is_monotonic_increasing


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path):
    for epoch in (1, 2, 3):
        save_state(tmp_path / f"checkpoint_00000{epoch - 1}", {"epoch": epoch, "w": torch.ones(2) * epoch},
                   {"epoch": epoch})
    (tmp_path / "checkpoint_000002" / "state.pt").write_bytes(b"not a torch file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state, used = load_first_readable(sibling_checkpoints(tmp_path / "checkpoint_000002"))
    assert state["epoch"] == 2 and used.name == "checkpoint_000001"
    assert any("checkpoint_000002" in str(w.message) and "falling back" in str(w.message) for w in caught)
    (tmp_path / "checkpoint_000001" / "state.pt").unlink()
    (tmp_path / "checkpoint_000000" / "state.pt").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_first_readable(sibling_checkpoints(tmp_path / "checkpoint_000002")) is None


def test_a_deleted_checkpoint_falls_forward_to_the_newest_beside_it(tmp_path):
    """Ray's snapshot may name a checkpoint the keeper deleted since: the newest one is used."""
    for epoch in (3, 4):
        save_state(tmp_path / f"checkpoint_00000{epoch - 1}", {"epoch": epoch}, {"epoch": epoch})
    named = tmp_path / "checkpoint_000001"     # what the snapshot holds; gone
    assert sibling_checkpoints(named) == [tmp_path / "checkpoint_000003", tmp_path / "checkpoint_000002"]
    state, used = load_first_readable(sibling_checkpoints(named))
    assert state["epoch"] == 4 and used.name == "checkpoint_000003"
    assert sibling_checkpoints(tmp_path / "nothing" / "checkpoint_000001") == []


def test_resume_of_a_non_results_folder_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", "resume", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "is not a vidtune results folder" in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_then_resume(tmp_path, cache_dir):
    experiment = tmp_path / "results" / "r"
    proc = subprocess.Popen(search_cmd(tmp_path, cache_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env(), start_new_session=True)
    try:
        run_until(proc, experiment, lambda r: any(df["epoch"].max() >= 2 for df in r.values()))
        os.killpg(proc.pid, signal.SIGINT)                 # what Ctrl-C in the terminal sends
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out[-2000:]
    assert f"vidtune resume {experiment}" in out
    # One way to go on: vidtune's line, not Ray's Tuner.restore hint; no warning for the trials
    # that had not reported yet.
    assert "Tuner.restore" not in out and "Could not fetch metrics" not in out, out[-3000:]
    # A damaged optuna.db (e.g. a disk that filled) is set aside and rebuilt from the trials.
    (experiment / "optuna.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    resumed = subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", "resume", str(experiment)],
                             capture_output=True, text=True, env=env(), timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"{experiment}/optuna.db is damaged (SQLite: " in resumed.stderr
    assert "rebuilt from the trials as the search resumes" in resumed.stderr
    assert "Could not fetch metrics" not in resumed.stdout + resumed.stderr
    after = progress(experiment)
    assert len(after) == NUM_SAMPLES
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{experiment / 'optuna.db'}")
    assert sorted(t.user_attrs["ray_trial_id"] for t in study.trials) == \
        sorted(name.removeprefix("trial_") for name in after)
    assert len(list(experiment.glob("optuna.db.damaged-*"))) == 1
    params = {(experiment / name / "params.json").read_text() for name in after}
    assert len(params) == NUM_SAMPLES
    assert all(df["epoch"].is_monotonic_increasing for df in after.values())
