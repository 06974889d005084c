"""A small registry of named search spaces with a clear error for unknown names."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

# A define-by-run function: samples from an Optuna trial, returns constants (or None).
DefineFn = Callable[[optuna.Trial], dict[str, Any] | None]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    define: DefineFn                         # module-level, so the searcher pickles for resume
    default: dict[str, Any]                  # the seed's configuration, always evaluated first
    constants: dict[str, Any] = field(default_factory=dict)   # fixed hyperparameters


_SPACES: dict[str, SearchSpace] = {}


def register(space: SearchSpace) -> SearchSpace:
    if space.name in _SPACES:
        raise ValueError(f"search space {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def get_space(name: str) -> SearchSpace:
    try:
        return _SPACES[name]
    except KeyError:
        raise ValueError(
            f"unknown search space {name!r}; known spaces: {', '.join(sorted(_SPACES))}"
        ) from None


def list_spaces() -> list[SearchSpace]:
    return [_SPACES[name] for name in sorted(_SPACES)]


@functools.cache
def _distributions(name: str) -> tuple[tuple[str, optuna.distributions.BaseDistribution], ...]:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)   # no "new study created" line
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        trial = study.ask()
        get_space(name).define(trial)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return tuple(trial.distributions.items())


def space_distributions(name: str) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions a space samples, found by running it once on a throwaway trial.

    Define-by-run spaces may branch; this records the parameters of one run, which covers the
    flat spaces registered here.
    """
    return dict(_distributions(name))
