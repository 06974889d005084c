"""Real Ray searches on tiny configs: the driver, ASHA, fractional-GPU packing, two nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch
from _helpers import in_process, progress

from vidtune.data import DataConfig
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.tune.driver import run_search

pytestmark = pytest.mark.slow


def tiny_search(tmp_path: Path, data: DataConfig, **kwargs) -> SearchConfig:
    base = dict(space="tiny", num_samples=6, max_epochs=3, grace_period=1, reduction_factor=3,
                results_dir=str(tmp_path / "results"), name="s", data=data)
    return SearchConfig(**{**base, **kwargs})


def test_tiny_search_end_to_end(tmp_path, cache_dir, local_ray):
    data = DataConfig(num_clips=300, frames=6, height=16, width=16, noise=0.2, cache_dir=cache_dir)
    # One trial at a time makes the run deterministic (seeded TPE, seeded trials, CPU).
    outcome = run_search(tiny_search(tmp_path, data, max_concurrent=1))
    runs = progress(outcome.experiment_path)
    assert outcome.num_trials == 6 and outcome.num_errors == 0
    assert len(runs) == 6, "every trial reported"
    epochs = {name: int(df["epoch"].max()) for name, df in runs.items()}
    assert min(epochs.values()) < 3, f"ASHA stopped no trial early: {epochs}"
    assert max(epochs.values()) == 3
    for df in runs.values():
        assert {"val_acc", "val_loss", "train_loss", "epoch", "diverged"} <= set(df.columns)
        assert list(df["epoch"]) == list(range(1, len(df) + 1))
    assert outcome.best is not None and outcome.best.val_acc > 0.25   # chance is 0.1
    best_in_files = max(df["val_acc"].max() for df in runs.values())
    assert outcome.best.val_acc == pytest.approx(best_in_files)
    # The seed default configuration is always the first trial.
    from vidtune.search_spaces import get_space
    from vidtune.trainable.tune.experiment import load_experiment

    trials = load_experiment(outcome.experiment_path).trials.sort_values("order")
    first = trials.iloc[0]
    assert {k: first[k] for k in get_space("tiny").default} == get_space("tiny").default
    exp = Path(outcome.experiment_path)
    assert exp.is_absolute() and (exp / "vidtune.json").is_file() and (exp / "best.json").is_file()
    assert (exp / "asha_decisions.jsonl").is_file()
    assert list(exp.glob("trial_*/checkpoint_*/state.pt")), "trials checkpoint every epoch"


def test_asha_cap_lets_at_most_a_third_through(tmp_path, cache_dir, local_ray):
    data = DataConfig(num_clips=200, frames=6, height=16, width=16, noise=0.2, cache_dir=cache_dir)
    outcome = run_search(tiny_search(tmp_path, data, num_samples=9, max_concurrent=2, promotion_cap=True))
    runs = progress(outcome.experiment_path)
    assert len(runs) == 9 and outcome.num_errors == 0
    passed = [name for name, df in runs.items() if df["epoch"].max() > 1]
    assert 1 <= len(passed) <= 9 // 3, f"{len(passed)} of 9 trials went past the rung at epoch 1"
    # At every decision, the trials let through so far fit the cap of the rung as it stood.
    lines = [json.loads(line) for line in
             (Path(outcome.experiment_path) / "asha_decisions.jsonl").read_text().splitlines()]
    decided = [line for line in lines if line["milestone"] == 1 and line["action"] != "COMPLETE"]
    assert len(decided) == 9
    for i, line in enumerate(decided):
        through = sum(d["action"] == "CONTINUE" for d in decided[: i + 1])
        assert through <= max(1, (line["rung_size"] + 1) // 3), decided[: i + 1]


def test_existing_experiment_is_not_overwritten(tmp_path, cache_dir, local_ray):
    data = DataConfig(num_clips=60, frames=4, height=16, width=16, cache_dir=cache_dir)
    run_search(tiny_search(tmp_path, data, num_samples=1, max_epochs=1))
    with pytest.raises(ValueError, match="vidtune resume"):
        run_search(tiny_search(tmp_path, data, num_samples=1, max_epochs=1))


def test_four_quarter_gpu_trials_run_at_once(tmp_path, cache_dir, own_ray):
    own_ray(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        data = DataConfig(num_clips=200, frames=6, height=16, width=16, noise=0.2, cache_dir=cache_dir)
        cfg = tiny_search(tmp_path, data, num_samples=4, max_epochs=4, grace_period=4,
                          gpus_per_trial=0.25, cpus_per_trial=1)
        outcome = run_search(cfg)
    finally:
        ray.shutdown()
    runs = progress(outcome.experiment_path)
    assert len(runs) == 4
    spans = [(df["started_at"].iloc[0], df["reported_at"].iloc[-1]) for df in runs.values()]
    # All four were running at the moment the last of them started.
    last_start = max(start for start, _ in spans)
    assert all(start <= last_start <= end for start, end in spans), spans
    # Each trial records the share Ray gave it (no CUDA here: no memory cap to set).
    from vidtune.trainable.tune.experiment import load_experiment

    trials = load_experiment(outcome.experiment_path).trials
    assert list(trials["gpu_share"]) == [0.25] * 4 and list(trials["gpu_cap_mb"]) == [0.0] * 4
    assert list(trials["gpu_peak_mb"]) == [0.0] * 4   # they trained on the CPU: no CUDA memory
    # The analysis shows the packing: trials.csv's columns, and a line in the report.
    from vidtune.analysis import analyze

    analysis = analyze(outcome.experiment_path, out=tmp_path / "analysis")
    table = pd.read_csv(analysis.files["trials.csv"])
    assert list(table["gpu_share"]) == [0.25] * 4 and list(table["gpu_peak_mb"]) == [0.0] * 4
    html = analysis.files["report.html"].read_text()
    assert "0.25 GPU per trial (4 per GPU); no CUDA memory used" in html and "gpu_peak_mb" in html


def test_two_node_cluster_spreads_trials(tmp_path, cache_dir, own_ray):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        own_ray(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        data = DataConfig(num_clips=200, frames=6, height=16, width=16, noise=0.2, cache_dir=cache_dir)
        with pytest.raises(ValueError, match="2 nodes: pass --storage"):
            run_search(tiny_search(tmp_path, data, name="nostorage"))
        cfg = tiny_search(tmp_path, data, num_samples=4, max_epochs=3, grace_period=3,
                          storage=str(tmp_path / "shared"))
        outcome = run_search(cfg)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert outcome.experiment_path.startswith(str(tmp_path / "shared"))
    runs = progress(outcome.experiment_path)
    assert len(runs) == 4
    nodes = {df["node_id"].iloc[0] for df in runs.values()}
    assert len(nodes) == 2, f"trials ran on {nodes}"


@pytest.mark.parametrize("args,message", [
    (["--gpus-per-trial", "-1"], "gpus_per_trial is -1.0"),
    (["--gpus-per-trial", "half"], "gpus per trial 'half' is not understood"),
    (["--gpus-per-trial", "2"], "gpus_per_trial is 2.0, but must lie in [0, 1]: a trial trains on one GPU"),
    *([] if torch.cuda.is_available() else
      [(["--gpus-per-trial", "auto"], "--gpus-per-trial auto measures the GPU memory a trial "
                                      "needs on this machine, but torch sees no CUDA device here")]),
    (["--space", "nope"], "unknown search space 'nope'; known spaces: default, tiny, video, wide"),
    (["--grace-period", "9", "--max-epochs", "3"], "grace_period (9) is larger than max_epochs (3)"),
    (["--storage", "relative/dir"], "give an absolute path"),
    (["--data", "/no/such/folder"], "data folder '/no/such/folder' does not exist"),
    (["--frames", "0"], "frames is 0"),
])
def test_bad_arguments_fail_before_ray_starts(args, message, tmp_path, capfd, no_ray):
    proc = in_process(capfd, "search", *args, "--results-dir", str(tmp_path))
    assert not ray.is_initialized()
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Ray" not in proc.stderr and not list(tmp_path.iterdir())


def test_help_on_every_command(capfd):
    from vidtune.scripts.cli import COMMANDS

    # `vidtune --help` in a fresh interpreter, as a user runs it; each command's in this process.
    proc = subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "usage" in proc.stdout, proc.stderr
    for command in COMMANDS:
        proc = in_process(capfd, command, "--help")
        assert proc.returncode == 0, (command, proc.stderr)
        assert "usage" in proc.stdout
