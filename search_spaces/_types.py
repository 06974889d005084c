"""The types every part of search_spaces/ shares: a space (SearchSpace), how one is given
(SpaceSpec) and the error a bad one raises (SpaceError). They sit below the registry
(_registry.py, which looks spaces up), the ways of making one (_declared.py, _user.py) and
the tracer of what a space samples (_trace.py), so that these import it and not each other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

# A define-by-run function: samples from an Optuna trial, returns constants (or None).
DefineFn = Callable[[optuna.Trial], dict[str, Any] | None]
# What SearchConfig.space and get_space() take.
SpaceSpec = str | Mapping[str, Any] | DefineFn


class SpaceError(ValueError):
    """A bad search space. `param` names the parameter at fault, when there is one, so that
    a search file can point at its line."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


SpaceError.__module__ = "vidtune.search_spaces"   # its public name, in tracebacks and error.txt


@dataclass(frozen=True)
class SearchSpace:
    name: str                                # the name, "file.py:function" or "declared"
    description: str
    define: DefineFn                         # pickles (module-level or a small object)
    default: dict[str, Any]                  # the first trial; {}: the seed where it fits
    constants: dict[str, Any] = field(default_factory=dict)   # fixed hyperparameters
    source: str = ""                         # the user's file (for error lines); "" built in
    key: str = ""                            # identity for caches ("" -> name)

    @property
    def cache_key(self) -> str:
        return self.key or self.name
