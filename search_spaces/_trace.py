"""Run a space on throwaway trials: what it samples, where (file and line), and that it runs.

This is how a space is checked before Ray starts: a user's function is called on in-memory
Optuna trials with a seeded random sampler, through a recorder that notes the line of every
suggest_* call. An exception inside the user's code is reported at the user's line, not as
vidtune's traceback.
"""

from __future__ import annotations

import linecache
import sys
import warnings
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

from vidtune.search_spaces._types import SearchSpace, SpaceError

TRACE_RUNS = 32          # runs on throwaway trials: enough to take the usual branches
_PLAIN = (type(None), bool, int, float, str)   # what Optuna's categorical choices may hold


@dataclass(frozen=True)
class Sampled:
    name: str
    distribution: BaseDistribution
    where: str           # "path line N" in the user's file, "" for built-in and declared spaces
    runs: int            # in how many of the trace's runs it was sampled (< all: conditional)


@dataclass(frozen=True)
class Trace:
    sampled: dict[str, Sampled]              # in the order first sampled
    runs: tuple[dict[str, Any], ...]         # each run's sampled parameters
    returned: dict[str, Any]                 # constants the function returned (all runs)
    num_runs: int
    configs: tuple[dict[str, Any], ...] = ()   # each run's config as Ray hands it to the trial:
                                               # the sampled values, then what it returned


def source_line(path: str, lineno: int) -> str:
    """": `the line's text`" of a line of the user's file ("" if it cannot be read)."""
    linecache.checkcache(path)
    text = linecache.getline(path, lineno).strip()
    return f": `{text}`" if text else ""


def located(tb: TracebackType | None, source: str) -> int | None:
    """The line of the innermost frame of a traceback inside the file `source` (None if none)."""
    line = None
    while tb is not None:
        if source and tb.tb_frame.f_code.co_filename == source:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def at_line(source: str, line: int | None) -> str:
    """"path line N: " (the prefix of an error at a user's line), "" if there is no line."""
    return f"{source} line {line}: " if line is not None else ""


def _caller(source: str) -> str:
    """"path line N" of the nearest calling frame in the user's file ("" if none)."""
    if not source:
        return ""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename == source:
            return f"{source} line {frame.f_lineno}"
        frame = frame.f_back   # type: ignore[assignment]
    return ""


class _Recorder:
    """An Optuna trial that notes where each parameter is suggested and names it in errors."""

    def __init__(self, trial: optuna.Trial, source: str, where: dict[str, str]) -> None:
        self._trial, self._source, self._where = trial, source, where

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self._trial, attr)
        if not attr.startswith("suggest_"):
            return method

        def suggest(name: str, *args: Any, **kwargs: Any) -> Any:
            where = _caller(self._source)
            prefix = f"{where}: " if where else ""
            choices = args[0] if args else kwargs.get("choices")
            if attr == "suggest_categorical" and choices is not None:
                odd = [c for c in choices if not isinstance(c, _PLAIN)]
                if odd:
                    raise SpaceError(f"{prefix}parameter {name!r}: choice {odd[0]!r} is not a "
                                     "number, string or bool; give conv widths as strings like "
                                     "'32-64-128'", param=name)
            try:
                value = method(name, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - Optuna's reason, pinned to the user's line
                raise SpaceError(f"{prefix}parameter {name!r}: {str(exc).rstrip('.')}; fix the "
                                 f"{attr} call", param=name) from None
            self._where.setdefault(name, where)
            return value

        return suggest


_CACHE: dict[str, Trace] = {}


def trace_space(space: SearchSpace, runs: int = TRACE_RUNS) -> Trace:
    """Run `space` `runs` times on throwaway trials (cached per space). SpaceError if it fails."""
    cached = _CACHE.get(space.cache_key)
    if cached is not None and cached.num_runs >= runs:
        return cached
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)   # no "new study created" line
    where: dict[str, str] = {}
    seen: dict[str, tuple[BaseDistribution, int]] = {}
    params: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    returned: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            for _ in range(runs):
                trial = study.ask()
                out = _run(space, trial, where) or {}
                returned.update(out)
                params.append(dict(trial.params))
                configs.append({**trial.params, **out})   # OptunaSearch's merge, returned last
                for name, dist in trial.distributions.items():
                    first, count = seen.get(name, (dist, 0))
                    seen[name] = (first, count + 1)
                study.tell(trial, 0.0)
    finally:
        optuna.logging.set_verbosity(verbosity)
    sampled = {name: Sampled(name, dist, where.get(name, ""), count)
               for name, (dist, count) in seen.items()}
    trace = Trace(sampled, tuple(params), returned, runs, tuple(configs))
    _CACHE[space.cache_key] = trace
    return trace


def _run(space: SearchSpace, trial: optuna.Trial, where: dict[str, str]) -> dict[str, Any] | None:
    try:
        out = space.define(_Recorder(trial, space.source, where))   # type: ignore[arg-type]
    except SpaceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in the user's function, at the user's line
        line = located(exc.__traceback__, space.source)
        text = source_line(space.source, line) if line is not None else ""
        raise SpaceError(f"{at_line(space.source, line)}{type(exc).__name__}: {exc} (while "
                         f"sampling space {space.name}){text}") from None
    if out is not None and not (isinstance(out, dict) and all(isinstance(k, str) for k in out)):
        raise SpaceError(f"space {space.name} returned {out!r}; a space returns None or a dict "
                         "of constants, e.g. {'spatial_pool': 2}")
    return out
