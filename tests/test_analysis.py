"""`vidtune analyze` and the analysis package, on real tiny searches (one finished, one killed).

The finished search: 5 trials of the tiny space, 3 epochs, ASHA grace 1 / factor 2, 80 clips
of 4x16x16. The interrupted one: the same CLI search in a subprocess, SIGKILLed once its first
trial has reported an epoch.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from vidtune.analysis import (
    Analysis,
    analyze,
    param_importances,
    plot_confusion,
    plot_learning_curves,
    plot_optimization_history,
    plot_parallel_coordinates,
    plot_params_vs_score,
    space_distributions,
)
from vidtune.analysis.analyze import PLOTS
from vidtune.analysis.plots import TOP_K, split_curves
from vidtune.analysis.tables import best_so_far_by_time, best_so_far_by_trial
from vidtune.data import DataConfig
from vidtune.trainable.core.results import TrialStatus

STATUSES = tuple(s.value for s in TrialStatus)

ROOT = Path(__file__).resolve().parents[1]
DATA = {"num_clips": 80, "frames": 4, "height": 16, "width": 16, "noise": 0.2}
NUM_SAMPLES, MAX_EPOCHS = 5, 3


def _assert_real_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    img = imread(path)                                   # (H, W, RGBA)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, (path, img.shape)
    colors = np.unique(img[::3, ::3].reshape(-1, img.shape[-1]), axis=0)
    assert len(colors) > 20 and img.std() > 0.02, f"{path} looks blank"


def _one_line_error(err: str, *texts: str) -> None:
    assert "Traceback" not in err
    line = err.strip()
    assert line and "\n" not in line, err
    for text in texts:
        assert text in line, line


def _run_until_first_report(cmd: list[str], folder: Path, log_path: Path,
                            stop: threading.Event) -> str:
    """Run the search command; SIGKILL it (its whole session) once a trial has reported."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None and not stop.is_set():
                reported = [p for p in folder.glob("trial_*/progress.csv")
                            if len(p.read_text().splitlines()) >= 2]
                if reported and list(folder.glob("experiment_state-*.json")):
                    return str(folder)
                time.sleep(0.2)
            raise RuntimeError(f"no trial reported (rc {proc.poll()}):\n"
                               + log_path.read_text()[-3000:])
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)   # the driver and the Ray it started
            proc.wait()


@pytest.fixture(scope="module")
def searches(tmp_path_factory: pytest.TempPathFactory, shared_ray) -> tuple[str, str]:
    """(finished, interrupted) experiment folders.

    Both run at once to save time: the CLI search in a subprocess (1 CPU), SIGKILLed by a
    watcher thread after its first trial reported an epoch, and the finished one here.
    """
    from vidtune.data import load_arrays
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.driver import run_search

    tmp = tmp_path_factory.mktemp("analysis")
    data = DataConfig(**DATA, cache_dir=str(tmp / "cache"))
    load_arrays(data)             # the clip cache, built once before two searches read it
    cmd = [sys.executable, "-m", "vidtune.scripts.cli", "search", "--space", "tiny", "--num-samples", "8",
           "--max-epochs", str(MAX_EPOCHS), "--reduction-factor", "2", "--num-cpus", "1",
           "--results-dir", str(tmp), "--name", "b", "--cache-dir", data.cache_dir,
           *[a for k, v in DATA.items() for a in (f"--{k.replace('_', '-')}", str(v))]]
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        killed = pool.submit(_run_until_first_report, cmd, tmp / "b", tmp / "b.log", stop)
        try:
            shared_ray.up()
            outcome = run_search(SearchConfig(
                space="tiny", num_samples=NUM_SAMPLES, max_epochs=MAX_EPOCHS, grace_period=1,
                reduction_factor=2, num_cpus=2, results_dir=str(tmp), name="a", data=data))
        except BaseException:
            stop.set()                # end the subprocess too
            raise
        return outcome.experiment_path, killed.result()


@pytest.fixture(scope="module")
def search(searches: tuple[str, str]) -> str:
    return searches[0]


@pytest.fixture(scope="module")
def interrupted(searches: tuple[str, str]) -> str:
    return searches[1]


@pytest.fixture(scope="module")
def analyzed(search: str) -> Analysis:
    return analyze(search)     # default out: RESULTS_DIR/analysis


@pytest.fixture(scope="module")
def cli(search: str, interrupted: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`vidtune analyze INTERRUPTED FINISHED --out OUT`: (OUT, what it printed)."""
    from vidtune.scripts.analyze import main

    out = tmp_path_factory.mktemp("cli")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        main([interrupted, search, "--out", str(out)], prog="vidtune analyze")
    return out, stdout.getvalue()


# -- the finished search ------------------------------------------------------------------

@pytest.mark.slow
def test_writes_tables_plots_and_report(search, analyzed):
    out = Path(search) / "analysis"
    assert analyzed.out == out
    for name in ("trials.csv", "history.csv", "summary.json", "report.html"):
        assert (out / name).is_file(), name
    for png in PLOTS:
        _assert_real_png(out / png)


def _expected_status(ray_status: str, progress: pd.DataFrame) -> str:
    """A finished trial's status, from Ray's status and what the trial reported."""
    if ray_status == "ERROR":
        return "errored"
    if progress["diverged"].any():
        return "diverged"
    return "completed" if progress["epoch"].max() >= MAX_EPOCHS else "stopped"


@pytest.mark.slow
def test_best_and_trial_rows_match_the_trials_own_progress(search, analyzed, read_progress,
                                                           read_snapshot):
    out = analyzed.out
    trials = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(out / "history.csv", dtype={"trial_id": str})
    assert len(trials) == NUM_SAMPLES and trials["trial_id"].is_unique
    assert set(trials["status"]) <= set(STATUSES) - {"running", "pending"}
    assert analyzed.finished
    for col in ("conv_blocks", "conv_base", "lstm_hidden", "lr", "best_val_acc", "final_val_acc",
                "epochs", "time_s"):
        assert trials[col].notna().all(), col
    assert len(history) == trials["epochs"].sum()
    assert trials["epochs"].between(1, MAX_EPOCHS).all()

    # Against what the trials wrote (progress.csv) and Ray's snapshot, read without the loader.
    progress, snapshot = read_progress(search), read_snapshot(search)
    order = [t["trial_id"] for t in snapshot]
    assert set(trials["trial_id"]) == set(order) and set(progress) == set(order)
    # Creation order, by the trainables' first start: Ray's snapshot lists trials in set order.
    first_start = {t: float(df["started_at"].min()) for t, df in progress.items()}
    assert list(trials["trial_id"]) == sorted(order, key=first_start.__getitem__)
    rows = trials.set_index("trial_id")
    for t in snapshot:
        mine, row = progress[t["trial_id"]], rows.loc[t["trial_id"]]
        assert row["status"] == _expected_status(t["status"], mine)
        assert row["epochs"] == mine["epoch"].max()
        assert row["final_val_acc"] == pytest.approx(mine["val_acc"].iloc[-1])
        assert row["best_val_acc"] == pytest.approx(mine.loc[mine["diverged"] == 0, "val_acc"].max())
    # The best: the highest val_acc reported; with 16 val clips ties are common, and they go
    # to the earlier trial, then the earlier epoch.
    reports = pd.concat([progress[trial_id] for trial_id in order], ignore_index=True)
    top = reports[reports["val_acc"] == reports["val_acc"].max()].iloc[0]
    assert analyzed.best is not None
    assert analyzed.best.val_acc == pytest.approx(top["val_acc"])
    assert (analyzed.best.trial_id, analyzed.best.epoch) == (top["trial_id"], int(top["epoch"]))
    assert analyzed.best.params == snapshot[order.index(top["trial_id"])]["config"]
    assert set(analyzed.best.params) == set(analyzed.param_names)
    assert sum(analyzed.counts.values()) == NUM_SAMPLES


@pytest.mark.slow
def test_compute_saving_and_asha_milestones(search, analyzed, read_progress):
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.driver import make_scheduler

    c = analyzed.compute
    assert c.full_epochs == NUM_SAMPLES * MAX_EPOCHS
    assert c.used_epochs == sum(int(p["epoch"].max()) for p in read_progress(search).values())
    assert c.saved_epochs == c.full_epochs - c.used_epochs
    # The rungs: those of the scheduler this search's config builds, below max_epochs, and the
    # rungs the search's own decision log recorded at (every trial reaches the first rung, and
    # the first trial, alone there, always passes on to the next).
    config = SearchConfig.load(search)
    rungs = sorted(m for m, _, _ in make_scheduler(config).rung_state() if m < config.max_epochs)
    assert analyzed.milestones == rungs and rungs
    log = (Path(search) / "asha_decisions.jsonl").read_text().splitlines()
    assert {json.loads(line)["milestone"] for line in log} - {config.max_epochs} == set(rungs)


@pytest.mark.slow
def test_importances_from_an_optuna_study_of_the_trials(analyzed):
    imp = analyzed.importances
    assert imp.num_trials == NUM_SAMPLES
    assert set(imp.values) == set(analyzed.param_names)
    assert sum(imp.values.values()) == pytest.approx(1.0)
    # Fewer than two usable trials: a note, no exception.
    one = param_importances(analyzed.trials.head(1), space_distributions("tiny"))
    assert one.values == {} and "at least 2" in one.note


@pytest.mark.slow
def test_report_is_self_contained(analyzed):
    html = (analyzed.out / "report.html").read_text()
    assert f"{analyzed.best.val_acc:.4f}" in html
    assert html.count('src="data:image/png;base64,') == len(PLOTS)
    assert "<img src=\"http" not in html and "file://" not in html
    # The trials table: one row per trial, with its status label (checked against
    # progress.csv in test_best_and_trial_rows_match_the_trials_own_progress).
    for trial_id, status in zip(analyzed.trials["trial_id"], analyzed.trials["status"], strict=True):
        label = TrialStatus(status).label
        assert re.search(rf"<td>{re.escape(trial_id)}</td>\s*<td>{re.escape(label)}</td>", html), \
            (trial_id, label)


@pytest.mark.slow
def test_cli_prints_the_best_and_the_retrain_pick(analyzed, cli):
    out, printed = cli
    assert f"best val_acc {analyzed.best.val_acc:.4f}" in printed
    assert f"retrain pick: trial {analyzed.pick.trial_id}" in printed
    assert "trials: " in printed and "compute: " in printed
    assert (out / "a" / "report.html").is_file()


def test_not_a_results_folder_is_a_one_line_error(tmp_path, capsys):
    from vidtune.scripts.analyze import main

    for folder in (tmp_path, tmp_path / "missing"):
        with pytest.raises(SystemExit) as exc:
            main([str(folder)], prog="vidtune analyze")
        assert exc.value.code == 2
        _one_line_error(capsys.readouterr().err, "vidtune analyze: error:", str(folder))


# -- an interrupted search ----------------------------------------------------------------

@pytest.mark.slow
def test_interrupted_search_is_analyzed_and_compared(cli):
    out, printed = cli
    assert "b: " in printed and "NOT finished" in printed
    trials = pd.read_csv(out / "b" / "trials.csv")
    assert set(trials["status"]) <= set(STATUSES)
    assert trials["status"].isin(["running", "pending"]).any()
    assert trials["epochs"].max() >= 1
    for png in PLOTS:
        _assert_real_png(out / "b" / png)
    assert (out / "b" / "report.html").is_file()
    for name in ("comparison.csv", "comparison.html"):
        assert (out / name).is_file()
    _assert_real_png(out / "comparison.png")
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["search"]) == ["b", "a"] and list(table["finished"]) == [False, True]


# -- plots on hand-made tables: every status, empty tables ------------------------------------

def _fake_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    statuses = ["completed", "stopped", "diverged", "errored", "running", "pending"]
    epochs = [3, 1, 2, 1, 2, 0]
    trials = pd.DataFrame({
        "trial_id": [f"t{i}" for i in range(6)], "order": range(6), "status": statuses,
        "conv_blocks": [1, 2, 1, 2, 1, 2], "conv_base": [4, 8, 4, 8, 8, 4],
        "lstm_hidden": [16, 32, 32, 16, 16, 32], "lr": [1e-3, 3e-3, 3e-2, 5e-3, 2e-3, 1e-2],
        "best_val_acc": [0.6, 0.3, math.nan, 0.2, 0.5, math.nan],
        "final_val_acc": [0.6, 0.3, 0.0, 0.2, 0.5, math.nan], "epochs": epochs,
        "time_s": [3.0, 1.0, 2.0, 1.0, 2.0, 0.0], "start": [100.0, 101, 102, 103, 104, math.nan],
    })
    rows = [{"trial_id": f"t{i}", "epoch": e, "timestamp": 100 + 2 * i + e,
             "time_total_s": float(e), "val_acc": (0.0 if statuses[i] == "diverged" and e == n
                                                   else 0.1 * (e + i % 3))}
            for i, n in enumerate(epochs) for e in range(1, n + 1)]
    return trials, pd.DataFrame(rows)


def test_plots_handle_every_status_and_empty_tables(tmp_path):
    trials, history = _fake_tables()
    scales = {"conv_blocks": "linear", "conv_base": "categorical", "lstm_hidden": "categorical",
              "lr": "log"}
    made = [
        plot_learning_curves(history, trials, [1, 2], 3, tmp_path / "lc.png"),
        plot_optimization_history(best_so_far_by_trial(trials),
                                  best_so_far_by_time(trials, history), tmp_path / "oh.png"),
        plot_params_vs_score(trials, scales, tmp_path / "p.png"),
        plot_parallel_coordinates(trials, scales, tmp_path / "pc.png"),
        plot_confusion([[5, 1, 0], [2, 3, 1], [0, 0, 6]], ["a", "b", "c"], tmp_path / "cm.png"),
    ]
    for png in made:
        _assert_real_png(png)
    by_trial = best_so_far_by_trial(trials)
    assert by_trial["best_so_far"].tolist() == [0.6] * 6
    empty_t, empty_h = trials.iloc[:0], history.iloc[:0]
    plot_learning_curves(empty_h, empty_t, [1], 3, tmp_path / "e1.png")
    plot_optimization_history(best_so_far_by_trial(empty_t), best_so_far_by_time(empty_t, empty_h),
                              tmp_path / "e2.png")
    plot_params_vs_score(empty_t, scales, tmp_path / "e3.png")
    plot_parallel_coordinates(empty_t, scales, tmp_path / "e4.png")
    assert all((tmp_path / f"e{i}.png").stat().st_size > 0 for i in range(1, 5))
    with pytest.raises(ValueError, match="shape"):
        plot_confusion([[1, 2]], ["a", "b"], tmp_path / "bad.png")


def test_importances_on_hand_made_trials():
    trials, _ = _fake_tables()
    imp = param_importances(trials, space_distributions("tiny"))
    # errored trials and trials without an epoch are left out; a diverged one counts as 0.
    assert imp.num_trials == 4 and set(imp.values) == {"conv_blocks", "conv_base", "lstm_hidden", "lr"}
    outside = trials.assign(lr=[1.0] * 6)          # outside the space's lr range
    assert param_importances(outside, space_distributions("tiny")).num_trials == 0


def test_analysis_imports_no_ray():
    code = ("import sys, vidtune.analysis, vidtune.analysis.plots; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_gpu_packing_line_from_the_trials_table():
    from vidtune.analysis.tables import gpu_packing

    cpu = pd.DataFrame({"gpu_share": [0.0, 0.0], "gpu_cap_mb": [0.0, 0.0], "gpu_peak_mb": [0.0, 0.0]})
    assert gpu_packing(cpu) is None and gpu_packing(cpu.iloc[:0]) is None
    fake = cpu.assign(gpu_share=[0.25, 0.25])   # a fake GPU: the share, but CPU training
    assert gpu_packing(fake) == "0.25 GPU per trial (4 per GPU); no CUDA memory used (the trials trained on CPUs)"
    real = pd.DataFrame({"gpu_share": [0.1666] * 3, "gpu_cap_mb": [13_515.3] * 3,
                         "gpu_peak_mb": [1_000.0, 2_000.0, float("nan")]})
    assert gpu_packing(real) == ("0.1666 GPU per trial (6 per GPU); peak CUDA memory per trial: "
                                 "median 1500 MiB, max 2000 MiB, of a 13515 MiB cap (15 % of it)")
    whole = real.assign(gpu_share=[1.0] * 3, gpu_cap_mb=[0.0] * 3)
    assert gpu_packing(whole) == "1 GPU per trial; peak CUDA memory per trial: median 1500 MiB, max 2000 MiB"


def test_many_trials_plot_the_best_curves_and_a_density_for_the_rest(tmp_path):
    n = 3 * TOP_K
    rows = [{"trial_id": f"t{i}", "epoch": e, "val_acc": (i % n) / n * e / 3, "timestamp": 100 + i,
             "time_total_s": float(e)} for i in range(n) for e in (1, 2, 3)]
    history = pd.DataFrame(rows)
    drawn, rest = split_curves(history, TOP_K)
    best = {f"t{i}" for i in range(n - TOP_K, n)}          # the highest val_acc at epoch 3
    assert set(drawn["trial_id"]) == best and len(drawn) == 3 * TOP_K
    assert set(rest["trial_id"]).isdisjoint(best) and len(rest) == len(history) - len(drawn)
    assert split_curves(history.iloc[:9], TOP_K)[1].empty   # 3 trials: all drawn
    trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "order": range(n),
                           "status": ["completed"] * n, "conv_blocks": [1, 2] * (n // 2),
                           "conv_base": [4, 8] * (n // 2), "lstm_hidden": [16] * n,
                           "lr": np.geomspace(1e-3, 3e-2, n), "epochs": [3] * n,
                           "best_val_acc": [(i % n) / n for i in range(n)]})
    scales = {"conv_blocks": "linear", "conv_base": "categorical", "lstm_hidden": "categorical",
              "lr": "log"}
    _assert_real_png(plot_learning_curves(history, trials, [1], 3, tmp_path / "lc.png"))
    _assert_real_png(plot_parallel_coordinates(trials, scales, tmp_path / "pc.png"))
