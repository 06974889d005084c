"""TPE whose proposal cost stops growing with the search: it learns from a bounded history.

Optuna's TPESampler reads every finished trial for every parameter it samples, so a proposal
costs O(n): 3 ms at 250 finished trials, 13 ms at 2,000 and 62 ms at 10,000 (bench_scale),
and in a search of thousands of short trials it became the driver's largest growing cost.

What TPE does with those n trials bounds what it needs of them. It splits them into a "good"
set, the best gamma(n) = min(ceil(n / 10), 25) trials, and the rest; each set's Parzen
estimator weighs its trials by age (Optuna's default_weights: the newest 25 at 1, the older
ones on a ramp down to 1/n). So beyond a few hundred trials the good set is the best 25 and
the rest is dominated by recent trials. BoundedTPESampler hands TPE exactly those: the best
25 finished trials and the most recent others, `history` in all (running trials too, for
the constant liar), in trial order. Up to `history` finished trials it is TPESampler itself.

The user's prior (PriorBand's idea; `--tpe-prior-weight`, off by default): during
TPE's random start-up trials, a share `prior_weight` of the trials is drawn near the space's
first trial (the seed configuration, or a warm start's best) instead of uniformly: a
categorical keeps the prior's value half of the time, a number is drawn from a normal around
it with 1/6 of its range (of its log range for a log-scale one) as its spread. The draws are a
pure function of (seed, trial number, parameter), so a resumed search draws the same ones. On
30 fully trained configs of the default space the distance to the seed configuration had a
rank correlation of -0.69 with the best val acc (docs/benchmarks.md, bench_rung_rules);
it is off until the race at equal wall time measures it.
"""

from __future__ import annotations

import heapq
import math
import zlib
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

HISTORY = 500   # finished trials TPE learns from, at most
BEST = 25       # of which the best (TPE's good set never holds more: default_gamma)


def bounded_history(trials: list[FrozenTrial], history: int, best: int, maximize: bool) -> list[FrozenTrial]:
    """The best `best` completed trials and the most recent others, `history` finished trials
    in all, plus every running trial; in the order they were given (trial order)."""
    finished = [i for i, t in enumerate(trials) if t.state != TrialState.RUNNING]
    if len(finished) <= history:
        return trials
    scored = [i for i in finished if trials[i].state == TrialState.COMPLETE and trials[i].value is not None]
    pick = heapq.nlargest if maximize else heapq.nsmallest
    keep = set(pick(best, scored, key=lambda i: float(trials[i].value or 0.0)))
    for i in reversed(finished):
        if len(keep) >= history:
            break
        keep.add(i)
    return [t for i, t in enumerate(trials) if i in keep or t.state == TrialState.RUNNING]


def sample_near(dist: BaseDistribution, prior: Any, rng: np.random.RandomState) -> Any:
    """One draw near `prior` within `dist` (the prior itself if dist does not hold it: uniform)."""
    if isinstance(dist, CategoricalDistribution):
        if prior in dist.choices and rng.rand() < 0.5:
            return prior
        return dist.choices[rng.randint(len(dist.choices))]
    if not isinstance(dist, FloatDistribution | IntDistribution):
        raise ValueError(f"cannot draw near the prior from {dist!r}")
    lo, hi = float(dist.low), float(dist.high)
    x = min(hi, max(lo, float(prior)))
    if dist.log:
        value = math.exp(rng.normal(math.log(x), (math.log(hi) - math.log(lo)) / 6))
    else:
        value = rng.normal(x, (hi - lo) / 6)
    value = min(hi, max(lo, value))
    if isinstance(dist, IntDistribution):
        step = dist.step
        return int(min(dist.high, max(dist.low, dist.low + round((value - lo) / step) * step)))
    if dist.step is not None:
        value = min(hi, lo + round((value - lo) / dist.step) * dist.step)
    return value


def _rng(seed: int | None, *parts: Any) -> np.random.RandomState:
    key = zlib.crc32(repr((seed, *parts)).encode())
    return np.random.RandomState(key)


class _Bounded:
    """A study as TPE sees it: every attribute the study's own, its trials bounded."""

    def __init__(self, study: optuna.Study, sampler: BoundedTPESampler) -> None:
        self._study, self._sampler = study, sampler

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return self._sampler.bounded(trials, self._study.direction == optuna.study.StudyDirection.MAXIMIZE)


class BoundedTPESampler(optuna.samplers.TPESampler):
    """optuna.samplers.TPESampler over at most `history` finished trials (module docstring)."""

    # Class defaults: a sampler pickled before the prior existed resumes without one.
    prior: dict[str, Any] = {}
    prior_weight: float = 0.0
    prior_seed: int | None = None

    def __init__(self, *args: Any, history: int = HISTORY, best: int = BEST,
                 prior: dict[str, Any] | None = None, prior_weight: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= prior_weight <= 1.0:
            raise ValueError(f"prior_weight is {prior_weight}, but must lie in [0, 1] (0: off)")
        self.prior, self.prior_weight = dict(prior or {}), prior_weight
        self.prior_seed = kwargs.get("seed")
        if history <= best:
            raise ValueError(f"history is {history}, but must exceed best ({best}): TPE's good "
                             "set alone holds that many")
        self.history, self.best = history, best
        self._cache: tuple[tuple[int, int, int], list[FrozenTrial]] | None = None
        self._sampling = -1   # the number of the trial being proposed

    def __getstate__(self) -> dict[str, Any]:   # pickled with the searcher at every snapshot
        return {**self.__dict__, "_cache": None}

    def bounded(self, trials: list[FrozenTrial], maximize: bool) -> list[FrozenTrial]:
        # A proposal samples each parameter against the same trials: worked out once per
        # proposed trial (and again if more trials finished meanwhile).
        key = (self._sampling, len(trials), int(maximize))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, bounded_history(trials, self.history, self.best, maximize))
        return self._cache[1]

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        """TPE's, except for the start-up trials drawn near the prior (module docstring)."""
        if self.prior_weight > 0 and param_name in self.prior:
            done = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED),
                                     use_cache=True)
            if (len(done) < self._n_startup_trials
                    and _rng(self.prior_seed, trial.number).rand() < self.prior_weight):
                return sample_near(param_distribution, self.prior[param_name],
                                   _rng(self.prior_seed, trial.number, param_name))
        return super().sample_independent(study, trial, param_name, param_distribution)

    def _sample(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        self._sampling = trial.number
        return super()._sample(_Bounded(study, self), trial, search_space)  # type: ignore[arg-type]
