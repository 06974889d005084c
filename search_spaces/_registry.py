"""Search spaces by name, by file or as a declaration, with a clear error for unknown names.

A space is given (SpaceSpec) as one of:
- a registered name: "default", "wide", "video", "tiny" (search_spaces/spaces.py);
- a define-by-run function in a user's file or module: "path/to/spaces.py:my_space" or
  "package.module:my_space" (search_spaces/_user.py);
- a declaration, the [space] table of a search file (search_spaces/_declared.py);
- in Python, the function itself (recorded as one of the two string forms above).

get_space() turns any of them into a SearchSpace whose `define` pickles: Ray's OptunaSearch
is pickled with the experiment for Tuner.restore, and a user's function is reached again by
its file or module name, never pickled by value.
"""

from __future__ import annotations

from collections.abc import Mapping

import optuna

from vidtune.search_spaces import _declared, _user
from vidtune.search_spaces._trace import trace_space
from vidtune.search_spaces._types import SearchSpace, SpaceError, SpaceSpec

_SPACES: dict[str, SearchSpace] = {}


def register(space: SearchSpace) -> SearchSpace:
    if space.name in _SPACES:
        raise ValueError(f"search space {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def registered(name: str) -> SearchSpace | None:
    return _SPACES.get(name)


def get_space(spec: SpaceSpec, sha256: str = "") -> SearchSpace:
    """The SearchSpace of a name, a "file.py:function" or "module:function", a declaration
    (mapping) or a function. SpaceError (a ValueError) naming the fix if it cannot be had.

    sha256: the content hash a search recorded for its space file; a file that has moved or
    changed since is an error, here and whenever Ray's searcher calls the space.
    """
    if isinstance(spec, Mapping):
        return _declared.declared_space(spec)
    if callable(spec):   # a built-in space's function is recorded by its name
        named = [space.name for space in _SPACES.values() if space.define is spec]
        return get_space(named[0] if named else _user.function_spec(spec))
    if not isinstance(spec, str):
        raise SpaceError(f"space is {spec!r}; give a name, 'file.py:function' or a declaration")
    if ":" in spec:
        return _user.user_space(spec, sha256)
    try:
        return _SPACES[spec]
    except KeyError:
        hint = " (a file? give path/to/file.py:function)" if spec.endswith(".py") else ""
        raise SpaceError(
            f"unknown search space {spec!r}; known spaces: {', '.join(sorted(_SPACES))}, "
            f"or a define-by-run function as path/to/file.py:function{hint}"
        ) from None


def space_label(spec: SpaceSpec) -> str:
    """A short name for a space in one line of text: the name or spec, or 'declared'."""
    if isinstance(spec, Mapping):
        return "declared"
    return spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))


def list_spaces() -> list[SearchSpace]:
    return [_SPACES[name] for name in sorted(_SPACES)]


def space_distributions(spec: SpaceSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions a space samples, found by running it on throwaway trials.

    A define-by-run space may branch (dropout only with 2 LSTM layers): the space is run
    TRACE_RUNS times with a seeded random sampler and the union is returned, so a
    conditional parameter is there as long as its branch is taken in one of the runs.
    """
    return {name: s.distribution for name, s in trace_space(get_space(spec)).sampled.items()}
