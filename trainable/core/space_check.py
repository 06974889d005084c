"""A search space checked against the model and training configs before Ray starts.

The space runs on throwaway trials (search_spaces.trace_space). Then every parameter name
must be a hyperparameter, both ends of every range and every choice must make a valid
ModelConfig/TrainConfig, and so must each sampled configuration and the first trial. Errors
name the parameter, the file and line of its suggest call (a user's file), and the fix.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from vidtune.search_spaces import SearchSpace, SpaceError, to_hparams, trace_space
from vidtune.trainable.core.config import ModelConfig, TrainConfig, split_params

# Set by the data (classes, RGB) and by the search (epochs, seed), never sampled.
NOT_SEARCHED = frozenset({"num_classes", "in_channels", "epochs", "seed"})
# Sampled as a pair and turned into conv_widths by to_hparams.
CONV_PAIR = ("conv_blocks", "conv_base")


def hyperparameters() -> list[str]:
    """The names a space may sample or fix."""
    names = {f.name for f in fields(ModelConfig)} | {f.name for f in fields(TrainConfig)}
    return sorted((names - NOT_SEARCHED) | set(CONV_PAIR))


def seed_config() -> dict[str, Any]:
    """The seed configuration (ModelConfig and TrainConfig defaults) as a space samples it."""
    m, t = ModelConfig(), TrainConfig()
    return {"conv_blocks": len(m.conv_widths), "conv_base": m.conv_widths[0],
            "conv_widths": "-".join(str(w) for w in m.conv_widths), "lstm_hidden": m.lstm_hidden,
            "lstm_layers": m.lstm_layers, "dropout": m.dropout, "spatial_pool": m.spatial_pool,
            "lr": t.lr, "weight_decay": t.weight_decay, "batch_size": t.batch_size,
            "grad_clip": t.grad_clip}


def contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def first_trial(space: SearchSpace) -> dict[str, Any]:
    """The configuration a search tries first: the space's own, else the seed configuration
    wherever the space samples its parameters and holds its values (the rest is sampled)."""
    if space.default:
        return dict(space.default)
    sampled = trace_space(space).sampled
    return {k: v for k, v in seed_config().items() if k in sampled and contains(sampled[k].distribution, v)}


def _ends(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution | FloatDistribution):
        return [dist.low, dist.high]
    return []


def _fails(constants: dict[str, Any], config: dict[str, Any]) -> str | None:
    """Why a trial's config cannot train (ModelConfig/TrainConfig's error), or None. Built as
    the trial builds it (core.trial._hparams): the space's constants, then to_hparams of the
    config Ray hands over, so a constant cannot stand in for half of conv_blocks/conv_base."""
    try:
        split_params({**constants, **to_hparams(config)})
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _at(where: str) -> str:
    return f"{where}: " if where else ""


_CHECKED: set[str] = set()


def check_space(space: SearchSpace) -> None:
    """SpaceError (a ValueError) if the space cannot give valid trials; cached per space."""
    if space.cache_key in _CHECKED:
        return
    trace = trace_space(space)
    known = hyperparameters()
    for s in trace.sampled.values():
        if s.name not in known:
            raise SpaceError(f"{_at(s.where)}unknown hyperparameter {s.name!r} in space "
                             f"{space.name}; known: {', '.join(known)}", param=s.name)
    constants = space.constants
    for name in {**constants, **trace.returned}:
        if name not in known:
            raise SpaceError(f"{_at(space.source)}unknown hyperparameter {name!r} among the "
                             f"constants of space {space.name}; known: {', '.join(known)}",
                             param=name)
    for s in trace.sampled.values():          # both ends of each range, every choice
        base = next(p for p in trace.runs if s.name in p)
        for value in _ends(s.distribution):
            why = _fails(constants, {**base, s.name: value})
            if why is not None:
                raise SpaceError(f"{_at(s.where)}parameter {s.name!r} of space {space.name}: "
                                 f"its value {value!r} fails: {why}", param=s.name)
    for params in trace.configs:
        why = _fails(constants, params)
        if why is not None:
            raise SpaceError(f"{_at(space.source)}space {space.name} sampled {params}, which "
                             f"fails: {why}")
    _check_first(space, trace.sampled, constants)
    _CHECKED.add(space.cache_key)


def _check_first(space: SearchSpace, sampled: dict[str, Any], constants: dict[str, Any]) -> None:
    where = _at(space.source)
    for name, value in space.default.items():
        if name not in sampled:
            raise SpaceError(f"{where}the first trial of space {space.name} sets {name!r}, which "
                             f"the space does not sample; it samples: {', '.join(sampled)}",
                             param=name)
        if not contains(sampled[name].distribution, value):
            raise SpaceError(f"{where}the first trial of space {space.name} sets {name} = "
                             f"{value!r}, outside its {sampled[name].distribution}", param=name)
