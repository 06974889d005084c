"""Search efficiency end to end: the time budget, bounded checkpoints, idle cores shared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import progress

from vidtune.data import DataConfig
from vidtune.trainable.core.checkpoint import load_state
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.tune.driver import run_search
from vidtune.trainable.tune.experiment import load_experiment

pytestmark = pytest.mark.slow


def _search(tmp_path: Path, cache_dir: str, **kwargs) -> SearchConfig:
    data = DataConfig(num_clips=300, frames=6, height=16, width=16, noise=0.2, cache_dir=cache_dir)
    base = dict(space="tiny", num_samples=5, max_epochs=3, grace_period=1, reduction_factor=2,
                results_dir=str(tmp_path / "results"), name="e", data=data)
    return SearchConfig(**{**base, **kwargs})


def test_finished_trials_keep_one_slim_checkpoint_each_only_the_best(tmp_path, cache_dir, local_ray):
    outcome = run_search(_search(tmp_path, cache_dir, keep_checkpoints=2))
    exp = Path(outcome.experiment_path)
    trials = load_experiment(exp).trials
    assert len(trials) == 5 and set(trials["status"]) <= {"completed", "stopped"}
    kept = {p.parent.name for p in exp.glob("trial_*/checkpoint_*")}
    # The two best by the retrain rule (most epochs, then final val_acc, then the earlier),
    # computed here from the trials' own progress.csv files.
    rows = [(-int(df["epoch"].max()), -float(df["val_acc"].iloc[-1]), name)
            for name, df in progress(str(exp)).items()]
    order = {f"trial_{t}": i for i, t in enumerate(trials["trial_id"])}
    best_two = {name for *_, name in sorted(rows, key=lambda r: (r[0], r[1], order[r[2]]))[:2]}
    assert kept == best_two
    for name in kept:
        (folder,) = list((exp / name).glob("checkpoint_*"))   # the newest only
        state = load_state(folder)
        assert "optimizer" not in state and state["slim"] and state["epoch"] == progress(str(exp))[name]["epoch"].max()
        assert set(state["model"]) and all(isinstance(v, torch.Tensor) for v in state["model"].values())


def test_a_lone_trial_takes_the_idle_core_unless_threads_are_fixed(tmp_path, cache_dir, local_ray):
    """One trial of 1 CPU on 2 CPUs, nothing else to run: from its second epoch on it trains
    with 2 threads (it is told within a second; the first epoch reports the 1 it started with)."""
    common = dict(num_samples=1, max_epochs=6, grace_period=6,
                  data=DataConfig(num_clips=500, frames=6, height=16, width=16, noise=0.2,
                                  cache_dir=cache_dir))
    shared = run_search(_search(tmp_path, cache_dir, name="shared", **common))
    fixed = run_search(_search(tmp_path, cache_dir, name="fixed", cpu_sharing="none", **common))
    (shared_run,) = progress(shared.experiment_path).values()
    (fixed_run,) = progress(fixed.experiment_path).values()
    assert shared_run["cpu_threads"].iloc[-1] == 2, shared_run[["epoch", "cpu_threads", "epoch_time_s"]]
    assert set(fixed_run["cpu_threads"]) == {1}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_time_budget_stops_cleanly_and_resume_needs_time_left(tmp_path, cache_dir):
    folder = tmp_path / "results" / "b"
    data = ["--space", "tiny", "--max-epochs", "1", "--num-clips", "100", "--frames", "4",
            "--height", "16", "--width", "16", "--cache-dir", cache_dir, "--num-cpus", "2"]
    first = _cli("search", "--time-budget", "30s", "--results-dir", str(tmp_path / "results"),
                 "--name", "b", *data)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "time budget spent" in first.stdout
    assert f"vidtune resume {folder} --time-budget" in first.stdout
    budget = json.loads((folder / "budget.jsonl").read_text())
    assert budget["total_s"] == 30 and budget["spent_s"] >= 25
    before = load_experiment(folder).trials
    assert len(before) > 2, "a budget without --num-samples runs as many trials as fit"
    # Trials the budget cut off mid-run (there may be none: the gate may have closed early).
    cut = set(before.loc[before["status"].isin(["running", "pending"]), "trial_id"])

    spent = _cli("resume", str(folder))
    assert spent.returncode == 2 and "Traceback" not in spent.stderr
    assert "time budget of 30s" in spent.stderr and "--time-budget 10m" in spent.stderr

    again = _cli("resume", str(folder), "--time-budget", "20s")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    after = load_experiment(folder).trials.set_index("trial_id")
    assert len(after) > len(before) or cut, "the new budget ran nothing"
    assert set(after.loc[list(cut), "status"]) <= {"completed", "stopped"}, "cut trials went on"
    assert json.loads((folder / "budget.jsonl").read_text())["total_s"] == 20
