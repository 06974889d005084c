"""Parameter importances with Optuna's evaluators, on an in-memory study rebuilt from the trials.

Ray Tune's OptunaSearch keeps its study inside the searcher; rather than unpickle that, the
trials table is replayed into a fresh study: distributions come from running the space's
define-by-run function once on a throwaway trial, values are each trial's best val_acc.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from vidtune.analysis.tables import trial_scores
from vidtune.search_spaces import SpaceSpec
from vidtune.trainable.core.results import TrialStatus

MIN_TRIALS = 2
# Errored trials are left out; a diverged trial counts with val_acc 0 (its config is bad).
USABLE = tuple(s.value for s in TrialStatus if s is not TrialStatus.ERRORED)


@dataclass(frozen=True)
class Importances:
    values: dict[str, float]     # parameter -> importance, normalized to sum 1, descending
    evaluator: str               # the evaluator's class name
    num_trials: int              # trials the study was built from
    note: str = ""               # why values is empty, or a caveat


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """No 'A new study created in memory' lines or experimental warnings on the console."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def space_distributions(space: SpaceSpec) -> dict[str, BaseDistribution]:
    """The Optuna distributions of a search space, quietly; {} if a user's space file is gone
    (the analysis then takes each parameter's scale from its column)."""
    from vidtune.search_spaces import SpaceError
    from vidtune.search_spaces import space_distributions as distributions_of

    with _quiet_optuna():
        try:
            return distributions_of(space)
        except SpaceError:
            return {}


def param_scales(distributions: dict[str, BaseDistribution], trials: pd.DataFrame,
                 param_names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """'log', 'linear' or 'categorical' per parameter (from the space, else from the column)."""
    scales = {}
    for name in param_names:
        dist = distributions.get(name)
        if isinstance(dist, CategoricalDistribution):
            scales[name] = "categorical"
        elif dist is not None:
            scales[name] = "log" if getattr(dist, "log", False) else "linear"
        elif name in trials and pd.api.types.is_numeric_dtype(trials[name]):
            scales[name] = "linear"
        else:
            scales[name] = "categorical"
    return scales


def _internal(dist: BaseDistribution, value: Any) -> Any:
    """A table value as the distribution's external value, or None if it lies outside."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(dist, CategoricalDistribution):
        # CSV and pandas turn 8 into 8.0 or np.int64(8): match by equality, return the choice.
        return next((c for c in dist.choices if c == value or str(c) == str(value)), None)
    value = int(value) if isinstance(dist, IntDistribution) else float(value)
    return value if dist._contains(dist.to_internal_repr(value)) else None


def _row_params(row: pd.Series, distributions: dict[str, BaseDistribution]
                ) -> tuple[dict[str, Any], dict[str, BaseDistribution]] | None:
    """A trial's params and their distributions; None if one lies outside the space."""
    params, dists = {}, {}
    for name, dist in distributions.items():
        raw = row.get(name)
        if raw is None or pd.isna(raw):        # not sampled by this trial (conditional space)
            continue
        value = _internal(dist, raw)
        if value is None:
            return None
        params[name], dists[name] = value, dist
    return params, dists


def build_study(trials: pd.DataFrame, distributions: dict[str, BaseDistribution]
                ) -> tuple[optuna.Study, int]:
    """A maximize study with one COMPLETE trial per usable row (value: its best val_acc),
    and the number of rows skipped because a parameter lies outside the space (the space
    changed after the search)."""
    scores = trial_scores(trials)
    skipped = 0
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize")
        for idx, row in trials.iterrows():
            if row["status"] not in USABLE or not row["epochs"] > 0 or pd.isna(scores[idx]):
                continue
            found = _row_params(row, distributions)
            if found is None:
                skipped += 1
                continue
            params, dists = found
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions=dists, value=float(scores[idx]),
                user_attrs={"trial_id": str(row["trial_id"])}))
    return study, skipped


def param_importances(trials: pd.DataFrame, distributions: dict[str, BaseDistribution],
                      evaluator: optuna.importance.BaseImportanceEvaluator | None = None
                      ) -> Importances:
    """optuna.importance.get_param_importances on the trials (Optuna's default evaluator
    unless one is given, e.g. FanovaImportanceEvaluator where scikit-learn is installed).
    Fewer than MIN_TRIALS usable trials give empty values and a note, not an error."""
    name = type(evaluator).__name__ if evaluator is not None else "PedAnovaImportanceEvaluator"
    if not distributions:
        return Importances({}, name, 0, "importances skipped: the search space has no parameters")
    study, skipped = build_study(trials, distributions)
    n = len(study.trials)
    extra = f"; {skipped} trials skipped (parameters outside the space)" if skipped else ""
    if n < MIN_TRIALS:
        return Importances({}, name, n, f"importances skipped: {n} usable trial(s), "
                                         f"at least {MIN_TRIALS} needed{extra}")
    with _quiet_optuna(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError, ImportError, ZeroDivisionError) as exc:
            return Importances({}, name, n, f"importances skipped: {exc}{extra}")
    values = {k: float(v) for k, v in values.items() if math.isfinite(v)}
    caveat = "; ".join(sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)
                               and not issubclass(w.category, optuna.exceptions.ExperimentalWarning)}))
    note = f"from {n} trials" + (f" ({caveat})" if caveat else "") + extra
    return Importances(values, name, n, note)
