"""Failing trials in real Ray searches: deterministic errors are not retried and are counted,
a search whose every trial errored fails, crashed workers are still retried (from a corrupt
checkpoint too), a vanishing storage stops the search, and a storage URI keeps every file.

Some configs of the space "flaky-test" fail deterministically in their worker: a trial with one
conv block takes dropout from the space's constants, and the workers' copy of the space
(registered by a worker setup hook) fixes it at 1.5, which makes ModelConfig raise ValueError.
The driver's copy fixes 0, so the space passes the checks made before Ray starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pyarrow.fs
import pytest

from vidtune.data import DataConfig
from vidtune.search_spaces import SearchSpace
from vidtune.search_spaces import _registry as registry
from vidtune.trainable.core import storage
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.storage import register_filesystem
from vidtune.trainable.tune.driver import resume_search, run_search
from vidtune.trainable.tune.experiment import load_experiment

pytestmark = pytest.mark.slow


def flaky_space(trial) -> None:
    trial.suggest_categorical("conv_base", [4])
    if trial.suggest_int("conv_blocks", 1, 2) == 2:
        trial.suggest_categorical("dropout", [0.0])
    trial.suggest_categorical("lstm_hidden", [16])
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)   # one block: dropout is the constant


FLAKY = SearchSpace("flaky-test", "some configs fail", flaky_space,
                    {"conv_blocks": 2, "conv_base": 4, "lstm_hidden": 16, "lr": 3e-3},
                    constants={"spatial_pool": 2, "dropout": 0.0})


def worker_hook():
    """Registers the space in every Ray worker (a closure, so Ray pickles it by value).
    Workers only read the space's constants (dropout 1.5: one-block trials fail); the
    driver samples with flaky_space."""
    def register() -> None:
        from vidtune.search_spaces import SearchSpace, _registry

        _registry._SPACES.setdefault("flaky-test", SearchSpace(
            "flaky-test", "", lambda trial: None, {},
            constants={"spatial_pool": 2, "dropout": 1.5}))
    return register


def small_data(cache_dir: str) -> DataConfig:
    return DataConfig(num_clips=60, frames=4, height=16, width=16, noise=0.2, cache_dir=cache_dir)


def failures(experiment: str | Path, trial_id: str) -> int:
    """How often Ray ran a trial into an error (its error.txt has one block per failure)."""
    path = Path(experiment) / f"trial_{trial_id}" / "error.txt"
    return path.read_text().count("Failure # ") if path.exists() else 0


@pytest.fixture
def flaky_ray(monkeypatch, own_ray):
    """A Ray of its own: its workers register the flaky space as they start."""
    monkeypatch.setitem(registry._SPACES, "flaky-test", FLAKY)
    own_ray(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
            runtime_env={"worker_process_setup_hook": worker_hook()})


def test_deterministic_errors_fail_once_are_counted_and_stay_failed_on_resume(
        tmp_path, cache_dir, flaky_ray, capsys):
    from vidtune.scripts._args import print_outcome

    cfg = SearchConfig(space="flaky-test", num_samples=6, max_epochs=2, grace_period=2,
                       sampler="random", max_failures=2, results_dir=str(tmp_path / "results"),
                       name="f", data=small_data(cache_dir))
    outcome = run_search(cfg)
    path = outcome.experiment_path
    trials = load_experiment(path).trials.set_index("trial_id")
    bad = trials["conv_blocks"] == 1
    assert 0 < bad.sum() < len(trials) == 6, trials[["conv_blocks", "status"]]
    assert (trials["status"] == "errored").tolist() == bad.tolist()

    # Each bad config failed once, though --max-failures is 2; the good ones never failed.
    assert {t: failures(path, t) for t in trials.index} == {t: int(b) for t, b in bad.items()}
    # Its one-line error, in trials.csv and counted by message in the outcome.
    expected = {t: "ValueError: dropout is 1.5, but must lie in [0, 1)" for t in trials.index[bad]}
    assert trials.loc[bad, "error"].to_dict() == expected
    assert (trials.loc[~bad, "error"] == "").all()
    assert outcome.num_errors == bad.sum() and not outcome.all_failed
    assert dict(outcome.errors) == dict(Counter(expected.values()))
    print_outcome(outcome)
    out = capsys.readouterr().out
    assert f"{bad.sum()} of 6 trials failed:\n" in out
    for line, count in outcome.errors:
        assert f"  {count}x {line}\n" in out
    assert f"full tracebacks: {path}/trial_*/error.txt" in out and "best val_acc" in out

    # `vidtune analyze` shows them, with their error, in trials.csv and the report.
    from vidtune.analysis import analyze, summary_lines

    analysis = analyze(path, out=tmp_path / "analysis")
    table = pd.read_csv(tmp_path / "analysis" / "trials.csv", keep_default_na=False,
                        dtype={"trial_id": str})
    assert dict(zip(table["trial_id"], table["error"], strict=True)) == {
        **{t: "" for t in trials.index}, **expected}
    report = (tmp_path / "analysis" / "report.html").read_text()
    for line in expected.values():
        assert line in report
    lines = summary_lines(analysis)
    assert all(f"  {count}x {line}" in lines for line, count in outcome.errors), lines

    # The Optuna mirror holds them as FAIL.
    study = optuna.load_study(study_name="f", storage=f"sqlite:///{path}/optuna.db")
    states = {t.user_attrs["ray_trial_id"]: t.state for t in study.trials}
    assert {t for t, s in states.items() if s == optuna.trial.TrialState.FAIL} == set(trials.index[bad])

    # A resume keeps errored trials failed: not rerun, nothing rewritten.
    before = {t: (Path(path) / f"trial_{t}" / "error.txt").read_bytes() for t in trials.index[bad]}
    rows = {t: (Path(path) / f"trial_{t}" / "progress.csv").read_text().count("\n") for t in trials.index}
    again = resume_search(path)
    assert again.num_errors == outcome.num_errors and again.errors == outcome.errors
    assert {t: (Path(path) / f"trial_{t}" / "error.txt").read_bytes() for t in trials.index[bad]} == before
    assert {t: (Path(path) / f"trial_{t}" / "progress.csv").read_text().count("\n")
            for t in trials.index} == rows
    study = optuna.load_study(study_name="f", storage=f"sqlite:///{path}/optuna.db")
    assert sorted(t.user_attrs["ray_trial_id"] for t in study.trials) == sorted(trials.index)
    assert load_experiment(path).trials.set_index("trial_id")["status"].to_dict() == \
        trials["status"].to_dict()


def test_a_search_whose_every_trial_errored_exits_1(tmp_path, cache_dir, monkeypatch, capsys,
                                                   local_ray):
    """The space is registered in the driver only: every trial raises ValueError in its worker."""
    from vidtune.scripts.resume import main as resume_main
    from vidtune.scripts.search import main as search_main

    monkeypatch.setitem(registry._SPACES, "flaky-test", FLAKY)
    started = time.time()
    with pytest.raises(SystemExit) as exit_info:
        search_main(["--space", "flaky-test", "--num-samples", "3", "--max-epochs", "1",
                     "--num-clips", "60", "--frames", "4", "--height", "16", "--width", "16",
                     "--cache-dir", cache_dir, "--results-dir", str(tmp_path), "--name", "all"],
                    prog="vidtune search")
    took = time.time() - started
    first = capsys.readouterr()
    with pytest.raises(SystemExit) as resume_exit:
        resume_main([str(tmp_path / "all")], prog="vidtune resume")
    second = capsys.readouterr()
    assert exit_info.value.code == 1 and resume_exit.value.code == 1
    message = ("3 of 3 trials failed: SpaceError: unknown search space 'flaky-test'; known "
               "spaces: default, tiny, video, wide, or a define-by-run function as path/to/file.py:function")
    assert f"vidtune search: error: {message}\n" in first.err
    assert f"full tracebacks: {tmp_path / 'all'}/trial_*/error.txt" in first.err
    assert "analyze:" not in first.out and "retrain:" not in first.out
    assert f"vidtune resume: error: {message}\n" in second.err
    trials = load_experiment(tmp_path / "all").trials
    assert [failures(tmp_path / "all", t) for t in trials["trial_id"]] == [1, 1, 1]
    print(f"3 errored trials, no retries: {took:.1f} s")


# -- real processes killed -----------------------------------------------------------------

MAX_EPOCHS = 5


def search_cmd(tmp_path: Path, cache_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidtune.scripts.cli", "search", "--space", "tiny",
            "--num-samples", "1", "--max-epochs", str(MAX_EPOCHS), "--grace-period", str(MAX_EPOCHS),
            "--num-cpus", "2", "--max-concurrent", "1", "--results-dir", str(tmp_path / "results"),
            "--name", "k", "--num-clips", "1200", "--frames", "8", "--height", "24", "--width", "24",
            "--noise", "0.2", "--cache-dir", cache_dir, *extra]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def rows(experiment: Path) -> pd.DataFrame | None:
    """The single trial's progress.csv, once it has a row."""
    for csv in experiment.glob("trial_*/progress.csv"):
        try:
            df = pd.read_csv(csv)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            return None
        return df if len(df) and "epoch" in df else None
    return None


def wait_for(proc: subprocess.Popen, ready, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the search ended too early"
        found = ready()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout} s")


def test_a_killed_worker_is_retried_past_a_corrupt_newest_checkpoint(tmp_path, cache_dir):
    """Transient faults keep their retries: the worker is SIGKILLed after its newest checkpoint
    was corrupted, the retry falls back to the previous checkpoint, and the search says so."""
    experiment = tmp_path / "results" / "k"
    proc = subprocess.Popen(search_cmd(tmp_path, cache_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env(), start_new_session=True)
    try:
        df = wait_for(proc, lambda: (lambda d: d if d is not None and d["epoch"].max() >= 2 else None)(
            rows(experiment)))
        newest = max((experiment / f"trial_{df['trial_id'].iloc[0]}").glob("checkpoint_*"))
        (newest / "state.pt").write_bytes(b"corrupt")
        os.kill(int(df["pid"].iloc[-1]), signal.SIGKILL)   # the trial's worker, mid-epoch
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    corrupt_epoch = int(newest.name.split("_")[-1]) + 1   # checkpoint_00000k holds epoch k+1
    df = rows(experiment)
    assert df is not None and df["pid"].nunique() == 2, "the trial should have run in a second worker"
    second = df[df["pid"] == df["pid"].iloc[-1]]
    assert second["epoch"].iloc[0] == corrupt_epoch, df[["epoch", "pid"]]   # from the one before
    assert df["epoch"].max() == MAX_EPOCHS
    trial_id = df["trial_id"].iloc[0]
    warning = f"checkpoint {newest} is unreadable"
    assert f"warning: trial {trial_id}: {warning}" in out and "falling back to the previous" in out
    trials = load_experiment(experiment).trials
    assert trials["warning"].iloc[0].startswith(warning) and trials["status"].iloc[0] == "completed"


def test_a_worker_killed_with_no_retries_left_is_an_errored_trial(tmp_path, cache_dir):
    experiment = tmp_path / "results" / "k"
    proc = subprocess.Popen(search_cmd(tmp_path, cache_dir, "--max-failures", "0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
                            start_new_session=True)
    try:
        df = wait_for(proc, lambda: rows(experiment))
        os.kill(int(df["pid"].iloc[-1]), signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err[-3000:]
    trials = load_experiment(experiment).trials
    line = trials["error"].iloc[0]   # from Ray's error.txt: the worker left no traceback
    assert trials["status"].iloc[0] == "errored" and "actor died" in line, line
    assert f"vidtune search: error: 1 of 1 trials failed: {line}\n" in err


def test_a_storage_that_disappears_mid_search_stops_it(tmp_path, cache_dir):
    storage = tmp_path / "shared"
    cmd = search_cmd(tmp_path, cache_dir, "--storage", str(storage))
    cmd[cmd.index("--num-samples") + 1] = "4"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(), start_new_session=True)
    try:
        wait_for(proc, lambda: rows(storage / "k"))
        subprocess.run(["rm", "-rf", str(storage)], check=True)   # the mount is gone
        removed = time.time()
        out, err = proc.communicate(timeout=300)
        took = time.time() - removed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err[-3000:]
    assert err.splitlines()[-1] == (
        f"vidtune search: error: the search's storage lost {storage}/k/vidtune.json mid-search "
        "(deleted, unmounted or unreachable); make the folder available again and continue with "
        "`vidtune resume`, or start a new search")
    assert took < 60, f"the search went on for {took:.0f} s without its storage"


def test_a_storage_uri_keeps_every_file_in_the_experiment_folder(tmp_path, cache_dir, monkeypatch,
                                                                 own_ray):
    """A URI storage served in-process by a custom pyarrow filesystem ("vtfs://bucket/x" is
    bucket/x under a local folder), as s3:// is served by pyarrow's S3 filesystem."""
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setitem(storage._FILESYSTEMS, "vtfs", lambda uri: (
        pyarrow.fs.SubTreeFileSystem(str(store), pyarrow.fs.LocalFileSystem()), uri.split("://", 1)[1]))
    assert register_filesystem   # the public way to do the same
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # Its own Ray, started here: its workers too begin in cwd, which must stay empty.
    own_ray(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    cfg = SearchConfig(space="tiny", num_samples=3, max_epochs=2, grace_period=1,
                       reduction_factor=2, storage="vtfs://bucket/x", name="s",
                       data=small_data(cache_dir))
    outcome = run_search(cfg)
    with pytest.raises(ValueError, match=r"vtfs://bucket/x/s already holds a search; resume it "
                       r"with `vidtune resume vtfs://bucket/x/s`"):
        run_search(cfg)
    resumed = resume_search("vtfs://bucket/x/s")
    folder = store / "bucket" / "x" / "s"
    assert outcome.experiment_path == "vtfs://bucket/x/s" and outcome.num_trials == 3
    assert resumed.num_trials == 3 and resumed.best.val_acc == outcome.best.val_acc
    assert {"vidtune.json", "best.json", "asha_decisions.jsonl", "optuna.db"} <= {
        p.name for p in folder.iterdir()}
    decisions = [json.loads(line) for line in (folder / "asha_decisions.jsonl").read_text().splitlines()]
    trials = load_experiment("vtfs://bucket/x/s").trials
    assert {d["trial_id"] for d in decisions} == set(trials["trial_id"])
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert sorted(t.user_attrs["ray_trial_id"] for t in study.trials) == sorted(trials["trial_id"])
    assert list(cwd.iterdir()) == [], "nothing may land in the working directory"
