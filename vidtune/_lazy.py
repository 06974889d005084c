"""Public names imported on first use (PEP 562), for the packages whose __init__ maps them.

    __getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__, globals())

_WHERE maps a public name to its module under the package ("loaders"), or to a full
(module, attribute) pair when the name differs. `import vidtune` then starts neither torch
nor Ray; the first lookup of a name imports its module and keeps the value as a plain global.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(package: str, where: Mapping[str, str | tuple[str, str]], names: Sequence[str],
               space: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    def __getattr__(name: str) -> Any:
        try:
            target = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}; "
                                 f"known: {', '.join(names)}") from None
        module, attr = target if isinstance(target, tuple) else (f"{package}.{target}", name)
        value = getattr(importlib.import_module(module), attr)
        space[name] = value   # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted([*space, *names])

    return __getattr__, __dir__
