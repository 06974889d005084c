"""Warm start: an earlier search's finished trials go to TPE before the new search's first
proposal; a user's space survives a SIGKILL and resume; bad warm-start folders fail first."""

from __future__ import annotations

import glob
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import ray
from _helpers import progress

from vidtune.data import DataConfig
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.tune.driver import make_searcher, run_search
from vidtune.trainable.tune.experiment import load_experiment
from vidtune.trainable.tune.warm_start import WARM_ATTR, load_warm_start

OVERLAP = '''\
def overlap(trial):
    """tiny's CNN and learning rate, one or two LSTM layers, the LSTM width fixed."""
    trial.suggest_int("conv_blocks", 1, 2)
    trial.suggest_categorical("conv_base", [4])
    trial.suggest_int("lstm_layers", 1, 2)
    trial.suggest_float("lr", 1e-3, 3e-2, log=True)


overlap.constants = {"lstm_hidden": 16, "spatial_pool": 2}
'''


def data(cache_dir: str, **kwargs) -> DataConfig:
    return DataConfig(**{"num_clips": 200, "frames": 6, "height": 16, "width": 16, "noise": 0.2,
                         "cache_dir": cache_dir, **kwargs})


def study_of(experiment: Path) -> optuna.Study:
    """The Optuna study inside the searcher Ray saved with the experiment (for resume)."""
    newest = sorted(glob.glob(str(experiment / "searcher-state-*.pkl")))[-1]
    with open(newest, "rb") as f:
        return pickle.load(f)["_ot_study"]


def first_points(searcher) -> list:
    """The points OptunaSearch evaluates first, under its wrappers (ConcurrencyLimiter, ...)."""
    while not hasattr(searcher, "_points_to_evaluate"):
        searcher = searcher.searcher
    return searcher._points_to_evaluate


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_DEDUP_LOGS": "0"}


# -- a warm-start folder that is not a search: refused before Ray starts --------------------------

@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing", "is not a vidtune results folder (no vidtune.json); pass the folder "
                              "that `vidtune search` printed"),
    (lambda p: (p / "plain").mkdir() or p / "plain", "is not a vidtune results folder"),
    (lambda p: ((p / "early").mkdir(), (p / "early" / "vidtune.json").write_text(
        json.dumps(SearchConfig(space="tiny").to_json())))[0] or p / "early",
     "holds no Ray Tune experiment state yet"),
])
def test_a_warm_start_folder_that_is_not_a_search(tmp_path, capsys, make, message, no_ray):
    from vidtune.scripts.cli import main

    folder = make(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--space", "tiny", "--warm-start", str(folder),
              "--results-dir", str(tmp_path / "results")])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"vidtune search: error: warm start: {folder}")
    assert message in line
    assert not ray.is_initialized() and not (tmp_path / "results").exists()


def test_warm_start_paths_in_a_search_file_are_relative_to_it(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "s.toml").write_text('[search]\nwarm_start = ["../results/a", "b"]\n')
    cfg = SearchConfig.from_file(tmp_path / "configs" / "s.toml")
    assert cfg.warm_start == (str(tmp_path / "results" / "a"), str(tmp_path / "configs" / "b"))


def test_the_earlier_best_is_the_warm_first_trial():
    """WarmStart.best_params: the highest value's parameters, the first of equals; none without
    trials. A trial without a value (never the case for loaded ones) ranks last."""
    from vidtune.trainable.tune.warm_start import WarmStart

    dist = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)

    def trial(lr: float, value: float | None) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.0,
                                      params={"lr": lr}, distributions={"lr": dist})
        t.value = value   # type: ignore[misc]
        return t

    assert WarmStart().best_params() == {}
    warm = WarmStart(trials=(trial(1e-3, 0.5), trial(2e-3, 0.9), trial(3e-3, 0.9), trial(4e-3, None)))
    assert warm.best_params() == {"lr": 2e-3}
    assert WarmStart(trials=(trial(4e-3, None), trial(1e-3, 0.1))).best_params() == {"lr": 1e-3}


# -- from a real finished search ---------------------------------------------------------------

@pytest.fixture(scope="module")
def old_search(tmp_path_factory, cache_dir, shared_ray) -> Path:
    """A finished tiny search (seed 0), one trial at a time; ASHA stops some trials."""
    root = tmp_path_factory.mktemp("old")
    shared_ray.up()
    outcome = run_search(SearchConfig(space="tiny", num_samples=6, max_epochs=3, grace_period=1,
                                      max_concurrent=1, results_dir=str(root), name="old",
                                      data=data(cache_dir)))
    return Path(outcome.experiment_path)


@pytest.mark.slow
def test_each_finished_trial_goes_to_tpe_with_its_final_val_acc(old_search, cache_dir):
    exp = load_experiment(old_search)
    assert {"completed", "stopped"} <= set(exp.trials["status"]), exp.trials["status"]
    warm = load_warm_start(SearchConfig(space="tiny", max_epochs=3, warm_start=(str(old_search),),
                                        data=data(cache_dir)))
    assert warm.notes == ("warm start: 6 finished trials from 1 earlier search",)
    assert len(warm.trials) == 6
    for t in warm.trials:
        row = exp.trials[exp.trials["trial_id"] == t.user_attrs["ray_trial_id"]].iloc[0]
        # COMPLETE with the final val_acc, for ASHA-stopped trials too: what Ray's OptunaSearch
        # tells the study about the new search's own trials.
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == row["final_val_acc"]
        assert t.user_attrs["status"] == row["status"] and t.user_attrs[WARM_ATTR] == exp.path
        params = json.loads((old_search / f"trial_{row['trial_id']}" / "params.json").read_text())
        assert t.params == params
        history = exp.history[exp.history["trial_id"] == row["trial_id"]]
        assert t.intermediate_values == dict(zip(history["epoch"], history["val_acc"], strict=True))
    # The earlier search ran tiny's first trial with the same data, epochs and seed: a rerun
    # would repeat it exactly (CPU), so the new search does not run it again ...
    from vidtune.search_spaces import get_space

    first = get_space("tiny").default
    assert warm.has_tried(first)
    cfg = SearchConfig(space="tiny", max_epochs=3, data=data(cache_dir))
    assert first_points(make_searcher(cfg, 1, warm)) == []
    assert first_points(make_searcher(cfg, 1)) == [first]
    # ... but with another seed the same config trains differently. The earlier search's best
    # config goes first, not the seed configuration, whose value TPE already has.
    other = replace(cfg, seed=1, warm_start=(str(old_search),))
    again = load_warm_start(other)
    best = exp.trials.loc[exp.trials["final_val_acc"].idxmax()]   # the first of equals
    best_params = json.loads((old_search / f"trial_{best['trial_id']}" / "params.json").read_text())
    assert again.best_params() == best_params
    assert len(again.trials) == 6 and not again.has_tried(best_params)
    assert first_points(make_searcher(other, 1, again)) == [{**first, **best_params}]


def tpe_of(searcher) -> optuna.samplers.TPESampler:
    return searcher.searcher.searcher._ot_study.sampler   # BudgetedSearch > ConcurrencyLimiter > OptunaSearch


@pytest.mark.slow
def test_warm_start_use_full_keeps_full_trials_and_explore_keeps_the_startup(old_search, cache_dir):
    exp = load_experiment(old_search)
    full_ids = set(exp.trials.loc[exp.trials["epochs"] == 3, "trial_id"])
    assert 0 < len(full_ids) < 6, exp.trials[["status", "epochs"]]
    base = SearchConfig(space="tiny", max_epochs=3, num_samples=12, warm_start=(str(old_search),),
                        data=data(cache_dir))
    full = load_warm_start(replace(base, warm_start_use="full"))
    assert {t.user_attrs["ray_trial_id"] for t in full.trials} == full_ids
    assert f"{6 - len(full_ids)} stopped before epoch 3 (--warm-start-use full)" in full.notes[-1]
    every = load_warm_start(base)
    cold_startup = tpe_of(make_searcher(replace(base, warm_start=()), 2))._n_startup_trials
    assert tpe_of(make_searcher(base, 2, every))._n_startup_trials == cold_startup
    explore = replace(base, warm_start_use="explore")
    assert tpe_of(make_searcher(explore, 2, every))._n_startup_trials == cold_startup + 6


@pytest.mark.slow
def test_overlapping_space_and_other_data_drop_with_notes_and_warn(old_search, cache_dir, tmp_path):
    (tmp_path / "spaces.py").write_text(OVERLAP)
    cfg = SearchConfig(space=f"{tmp_path / 'spaces.py'}:overlap", max_epochs=3,
                       warm_start=(str(old_search),), data=data(cache_dir, num_clips=120, frames=4))
    warm = load_warm_start(cfg)
    old = load_experiment(old_search).trials
    wide = int((old["conv_base"] == 8).sum())
    assert 0 < wide < 6
    assert warm.notes == (
        "warm start: 6 finished trials from 1 earlier search",
        f"warning: warm start from {old_search}, which searched a different dataset: num_clips 200 "
        "(now 120); another clip size: frames 6 (now 4): its accuracies may not carry over",
        "note: parameters this space does not sample, dropped: lstm_hidden (6 trials)",
        f"note: values outside this space's ranges or choices, dropped: conv_base ({wide} trials)",
    )
    for t in warm.trials:
        assert set(t.params) <= {"conv_blocks", "conv_base", "lr"} and "lr" in t.params
        assert t.params.get("conv_base", 4) == 4
    assert warm.tried == ()   # another benchmark: nothing counts as already run


@pytest.mark.slow
def test_warm_started_search_from_python(old_search, cache_dir, tmp_path, monkeypatch, capfd,
                                         local_ray):
    """The Python API with a space given as a function and a warm-start path."""
    (tmp_path / "overlap_spaces.py").write_text(OVERLAP)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "overlap_spaces", raising=False)   # this test's own file
    import overlap_spaces

    import vidtune

    cfg = vidtune.SearchConfig(space=overlap_spaces.overlap, num_samples=3, max_epochs=2,
                               grace_period=2, max_concurrent=1, warm_start=[str(old_search)],
                               results_dir=str(tmp_path / "results"), name="warm",
                               data=data(cache_dir))
    outcome = vidtune.run_search(cfg)
    err = capfd.readouterr().err
    assert "warm start: 6 finished trials from 1 earlier search" in err
    assert "warning: warm start from" in err and "max_epochs 3 (now 2)" in err
    assert outcome.num_trials == 3 and outcome.num_errors == 0
    study = study_of(Path(outcome.experiment_path))
    warm = [t for t in study.trials if WARM_ATTR in t.user_attrs]
    own = [t for t in study.trials if WARM_ATTR not in t.user_attrs]
    assert len(warm) == 6 and len(own) == 3
    # In the study before any proposal of TPE's own (the first trial is enqueued, number 0).
    assert max(t.number for t in warm) < min(t.number for t in own[1:])
    assert all("lstm_layers" in t.params for t in own)
    saved = json.loads((Path(outcome.experiment_path) / "vidtune.json").read_text())
    assert saved["space"] == f"{tmp_path / 'overlap_spaces.py'}:overlap"
    assert saved["warm_start"] == [str(old_search)]


NUM_SAMPLES, MAX_EPOCHS = 6, 4


@pytest.mark.slow
def test_sigkill_then_resume_with_a_user_space_and_warm_start(old_search, cache_dir, tmp_path):
    spaces = tmp_path / "spaces.py"
    spaces.write_text(OVERLAP)
    experiment = tmp_path / "results" / "k"
    cmd = [sys.executable, "-m", "vidtune.scripts.cli", "search", "--space", f"{spaces}:overlap",
           "--warm-start", str(old_search), "--num-samples", str(NUM_SAMPLES),
           "--max-epochs", str(MAX_EPOCHS), "--grace-period", "2", "--reduction-factor", "2",
           "--num-cpus", "2", "--results-dir", str(tmp_path / "results"), "--name", "k",
           "--num-clips", "1200", "--frames", "8", "--height", "24", "--width", "24",
           "--noise", "0.2", "--cache-dir", cache_dir]
    log = tmp_path / "search.log"
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env(),
                            start_new_session=True)

    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert proc.poll() is None, "the search ended before it could be killed:\n" + log.read_text()[-3000:]
            now = progress(experiment)
            # grace 2: between a trial's first and second report it is surely running.
            if len(now) < NUM_SAMPLES and any(df["epoch"].max() == 1 for df in now.values()) \
                    and (experiment / "tuner.pkl").exists() and glob.glob(str(experiment / "searcher-state-*.pkl")):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no moment to kill: " + log.read_text()[-3000:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)   # the driver and its embedded Ray
        proc.wait()
    assert "warning: warm start from" in log.read_text() and "a different dataset" in log.read_text()

    def resume() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", "resume", str(experiment)],
                              capture_output=True, text=True, env=env(), timeout=500)

    # A changed space file is refused, before anything starts; restored, the search resumes.
    original = spaces.read_text()
    spaces.write_text(original.replace("1e-3, 3e-2", "1e-4, 3e-2"))
    refused = resume()
    assert refused.returncode == 2 and "has changed since the search started" in refused.stderr
    assert "Traceback" not in refused.stderr
    spaces.write_text(original)
    resumed = resume()
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    after = progress(experiment)
    assert len(after) == NUM_SAMPLES
    params = [json.loads((experiment / name / "params.json").read_text()) for name in after]
    assert len({json.dumps(p, sort_keys=True) for p in params}) == NUM_SAMPLES, "a config was repeated"
    assert all("lstm_layers" in p and "lstm_hidden" not in p for p in params)   # the user's space
    # The restored searcher still holds the warm trials and learned from them.
    study = study_of(experiment)
    assert sum(WARM_ATTR in t.user_attrs for t in study.trials) == 6
    assert sum(WARM_ATTR not in t.user_attrs for t in study.trials) == NUM_SAMPLES
    exp = load_experiment(experiment)
    assert set(exp.trials["status"]) <= {"completed", "stopped"}, exp.trials["status"]
    assert len(exp.config.space_sha256) == 64   # recorded in vidtune.json
