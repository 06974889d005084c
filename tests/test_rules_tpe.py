"""BoundedTPESampler's rules on real Optuna studies, in milliseconds: TPE itself up to its
history, and beyond it TPE over the best 25 and the most recent trials."""

from __future__ import annotations

import pickle

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from vidtune.search_spaces import get_space, space_distributions
from vidtune.trainable.tune.tpe import BoundedTPESampler, bounded_history

optuna.logging.set_verbosity(optuna.logging.WARNING)


def finished(n: int, seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    """n finished trials of the tiny space, with noisy values; one in four stopped (PRUNED)."""
    rng = np.random.default_rng(seed)
    dists = space_distributions("tiny")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for i in range(n):
        trial = study.ask()
        get_space("tiny").define(trial)
        state = TrialState.PRUNED if i % 4 == 3 else TrialState.COMPLETE
        value = float(rng.uniform(0.1, 0.9))
        out.append(optuna.trial.create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None,
            params=trial.params, distributions={k: dists[k] for k in trial.params},
            intermediate_values={1: value}))
        out[-1].number = i   # as a study numbers them
    return out


def proposals(sampler: optuna.samplers.BaseSampler, trials: list, asks: int = 5) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.add_trials(trials)
    out = []
    for _ in range(asks):
        trial = study.ask()
        get_space("tiny").define(trial)
        out.append(trial.params)
        study.tell(trial, 0.5)
    return out


def test_up_to_its_history_it_is_tpe_itself():
    trials = finished(120)
    assert proposals(BoundedTPESampler(seed=3, history=200), trials) == \
        proposals(optuna.samplers.TPESampler(seed=3), trials)


def test_beyond_its_history_it_is_tpe_over_the_best_and_the_most_recent():
    trials = finished(300)
    kept = bounded_history(trials, history=100, best=25, maximize=True)
    numbers = [t.number for t in kept]
    assert len(kept) == 100 and numbers == sorted(numbers)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = sorted(complete, key=lambda t: t.value, reverse=True)[:25]
    assert {t.number for t in best} <= set(numbers)
    rest = [n for n in numbers if n not in {t.number for t in best}]
    assert rest == [t.number for t in trials if t.number not in {b.number for b in best}][-75:]
    # Its proposals over all 300 are TPE's over those 100 alone (TPE weighs trials by their
    # order, not their numbers).
    assert proposals(BoundedTPESampler(seed=3, history=100), trials, asks=1) == \
        proposals(optuna.samplers.TPESampler(seed=3), kept, asks=1)
    # The best of a minimized study are the smallest values.
    low = bounded_history(trials, history=100, best=25, maximize=False)
    smallest = sorted(complete, key=lambda t: t.value)[:25]
    assert {t.number for t in smallest} <= {t.number for t in low}


def test_running_trials_stay_for_the_constant_liar():
    trials = finished(60)
    running = optuna.trial.create_trial(state=TrialState.RUNNING, params={}, distributions={})
    mixed = [*trials[:10], running, *trials[10:]]
    for i, t in enumerate(mixed):
        t.number = i
    kept = bounded_history(mixed, history=40, best=25, maximize=True)
    assert running in kept and sum(t.state != TrialState.RUNNING for t in kept) == 40


def test_its_pickle_leaves_the_history_out():
    sampler = BoundedTPESampler(seed=0, history=50)
    proposals(sampler, finished(80), asks=1)
    assert sampler._cache is not None
    assert sum(t.state != TrialState.RUNNING for t in sampler._cache[1]) == 50
    back = pickle.loads(pickle.dumps(sampler))
    assert back._cache is None and (back.history, back.best) == (50, 25)


def test_a_history_no_larger_than_the_good_set_is_refused():
    with pytest.raises(ValueError, match="history is 25, but must exceed best"):
        BoundedTPESampler(history=25)


# -- the user's prior (--tpe-prior-weight) ------------------------------------------

def _proposals(sampler, n: int = 12) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    define = get_space("default").define
    out = []
    for i in range(n):
        trial = study.ask()
        define(trial)
        out.append(dict(trial.params))
        study.tell(trial, float(i % 3))
    return out


def test_prior_draws_the_start_up_trials_near_the_seed_configuration_and_off_changes_nothing():
    from vidtune.search_spaces.spaces import SEED_DEFAULT

    plain = _proposals(BoundedTPESampler(seed=3, n_startup_trials=10))
    off = _proposals(BoundedTPESampler(seed=3, n_startup_trials=10, prior=SEED_DEFAULT, prior_weight=0.0))
    assert off == plain
    near = _proposals(BoundedTPESampler(seed=3, n_startup_trials=10, prior=SEED_DEFAULT, prior_weight=1.0))
    again = _proposals(BoundedTPESampler(seed=3, n_startup_trials=10, prior=SEED_DEFAULT, prior_weight=1.0))
    assert near == again                       # a pure function of (seed, trial, parameter)

    def log_gap(ps: list[dict]) -> float:
        return float(np.median([abs(np.log10(p["lr"] / SEED_DEFAULT["lr"])) for p in ps[:10]]))

    assert log_gap(near) < log_gap(plain)      # within 1/6 of the log range: 0.33 decades
    assert sum(p["conv_base"] == 32 for p in near[:10]) > sum(p["conv_base"] == 32 for p in plain[:10])
    with pytest.raises(ValueError, match="prior_weight is 1.5, but must lie in"):
        BoundedTPESampler(prior=SEED_DEFAULT, prior_weight=1.5)


def test_sample_near_stays_within_the_distribution():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from vidtune.trainable.tune.tpe import sample_near

    rng = np.random.RandomState(0)
    ints = [sample_near(IntDistribution(2, 3), 3, rng) for _ in range(200)]
    assert set(ints) <= {2, 3} and ints.count(3) > ints.count(2)
    floats = [sample_near(FloatDistribution(1e-4, 3e-2, log=True), 1e-3, rng) for _ in range(200)]
    assert all(1e-4 <= x <= 3e-2 for x in floats)
    cats = [sample_near(CategoricalDistribution([16, 32, 48]), 32, rng) for _ in range(300)]
    assert 0.55 < cats.count(32) / 300 < 0.8   # half kept, a third of the rest drawn again


def test_the_search_gives_tpe_the_spaces_first_trial_as_its_prior():
    from dataclasses import replace

    from vidtune.search_spaces.spaces import SEED_DEFAULT
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.driver import make_searcher

    def tpe(cfg: SearchConfig) -> BoundedTPESampler:
        return make_searcher(cfg, 2).searcher.searcher._ot_study.sampler  # Budgeted > Limiter > Optuna

    cfg = SearchConfig(space="default")
    assert tpe(cfg).prior_weight == 0.0                       # off by default
    on = tpe(replace(cfg, tpe_prior_weight=0.5))
    assert (on.prior, on.prior_weight) == (SEED_DEFAULT, 0.5)
    with pytest.raises(ValueError, match="tpe_prior_weight is -1.0, but must lie in"):
        replace(cfg, tpe_prior_weight=-1.0)
