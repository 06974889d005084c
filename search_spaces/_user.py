"""Spaces in a user's file or module: "path/to/spaces.py:my_space" or "package.module:my_space".

The function is a define-by-run space over an Optuna trial, as the built-in spaces are:

    def my_space(trial):
        trial.suggest_int("conv_blocks", 2, 4)
        ...
    my_space.first = {"conv_blocks": 3, ...}       # optional: the first trial
    my_space.constants = {"spatial_pool": 2}       # optional: fixed hyperparameters

A file is loaded with importlib under a private module name, once per content (sha256).
Ray's searcher and the trial workers reach the function again through SpaceRef, which
pickles as (spec, sha256) and refuses a file that has changed since.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna

from vidtune.search_spaces._trace import at_line, located, source_line
from vidtune.search_spaces._types import SearchSpace, SpaceError

_PREFIX = "_vidtune_space_"
_MODULES: dict[tuple[str, str], ModuleType] = {}   # (absolute path, sha256) -> loaded file
EXAMPLE = "--space path/to/spaces.py:my_space"


def split_spec(spec: str) -> tuple[str, str]:
    """"path/to/spaces.py:my_space" -> ("path/to/spaces.py", "my_space")."""
    target, _, func = spec.rpartition(":")
    if not target or not func.isidentifier():
        raise SpaceError(f"space {spec!r} is not FILE.py:FUNCTION or MODULE:FUNCTION, "
                         f"e.g. {EXAMPLE}")
    return target, func


def is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_of(spec: str) -> str:
    """The file a user's space lives in (a module's __file__ for MODULE:FUNCTION)."""
    target, _ = split_spec(spec)
    if is_file(target):
        return str(Path(target).expanduser().resolve())
    return str(getattr(_import(target, spec), "__file__", "") or "")


def resolve_spec(spec: str) -> str:
    """A file spec with an absolute path (trials run in their own folders); others as given."""
    target, func = split_spec(spec)
    return f"{Path(target).expanduser().resolve()}:{func}" if is_file(target) else spec


def check_unchanged(spec: str, sha256: str) -> None:
    """SpaceError if the space file recorded with a search has moved or changed since."""
    path = source_of(spec)
    if not path or not Path(path).is_file():
        raise SpaceError(f"space file {path or spec!r} of this search is gone: moved or deleted "
                         f"since the search started (vidtune.json records it, sha256 "
                         f"{sha256[:12]}); put it back at that path to use this search's space")
    now = sha256_of(path)
    if now != sha256:
        raise SpaceError(f"space file {path} has changed since the search started (sha256 "
                         f"{sha256[:12]} in vidtune.json, {now[:12]} now); restore it to resume, "
                         "or start a new search with the changed space")


def _load_file(target: str, spec: str) -> ModuleType:
    path = Path(target).expanduser().resolve()
    if not path.is_file():
        hint = " (a search file goes to --config)" if path.suffix in (".toml", ".json") else ""
        raise SpaceError(f"space file {target!r} does not exist (space {spec!r}); check the path, "
                         f"e.g. {EXAMPLE}{hint}")
    data = path.read_bytes()
    key = (str(path), hashlib.sha256(data).hexdigest())
    if key in _MODULES:
        return _MODULES[key]
    name = _PREFIX + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module     # dataclasses and pickle look their module up there
    try:
        exec(compile(data, str(path), "exec"), module.__dict__)
    except SyntaxError as exc:
        text = f": `{exc.text.strip()}`" if exc.text else ""
        raise SpaceError(f"{path} line {exc.lineno}: syntax error: {exc.msg}{text}; fix the "
                         "space file") from None
    except Exception as exc:  # noqa: BLE001 - the user's error, at the user's line
        line = located(exc.__traceback__, str(path))
        text = source_line(str(path), line) if line is not None else ""
        raise SpaceError(f"{at_line(str(path), line) or f'{path}: '}{type(exc).__name__}: {exc} "
                         f"(while loading the space file){text}") from None
    _MODULES[key] = module
    return module


def _import(target: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is not None and target.startswith(exc.name):
            raise SpaceError(f"cannot import module {target!r} of space {spec!r} ({exc}); give its "
                             "file instead (path/to/module.py:function) or put it on PYTHONPATH"
                             ) from None
        raise SpaceError(f"module {target!r} of space {spec!r} fails to import: {exc}") from None
    except SyntaxError as exc:
        raise SpaceError(f"{exc.filename} line {exc.lineno}: syntax error: {exc.msg}: "
                         f"`{(exc.text or '').strip()}`; fix the module") from None
    except Exception as exc:  # noqa: BLE001 - the user's error, at the innermost line
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename} line {tb.tb_lineno}: " if tb else ""
        raise SpaceError(f"{where}{type(exc).__name__}: {exc} (while importing {target!r})"
                         ) from None


def load_function(spec: str, sha256: str = "") -> Callable[[optuna.Trial], Any]:
    """The user's define-by-run function. With sha256: SpaceError if the file changed since."""
    if sha256:
        check_unchanged(spec, sha256)
    target, func = split_spec(spec)
    module = _load_file(target, spec) if is_file(target) else _import(target, spec)
    where = getattr(module, "__file__", None) or target
    fn = getattr(module, func, None)
    if fn is None:
        found = sorted(n for n, v in vars(module).items()
                       if inspect.isfunction(v) and not n.startswith("_"))
        raise SpaceError(f"{where} has no function {func!r}; its functions: "
                         f"{', '.join(found) or 'none'}")
    if not callable(fn):
        raise SpaceError(f"{where}: {func} is a {type(fn).__name__}, not a function; a space is "
                         f"def {func}(trial): ...")
    check_signature(fn, func, where)
    return fn


def check_signature(fn: Callable[..., Any], func: str, where: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(object())
    except TypeError:
        code = getattr(fn, "__code__", None)
        at = f"{where} line {code.co_firstlineno}" if code is not None else where
        raise SpaceError(f"{at}: {func}{sig} is not a search space: it must take one argument, "
                         f"the Optuna trial: def {func}(trial): ...") from None


@dataclass(frozen=True)
class SpaceRef:
    """A user's define-by-run function by reference: pickles as (spec, sha256), so Ray's
    searcher, pickled for Tuner.restore, finds the same file again (and refuses a changed one)."""

    spec: str
    sha256: str = ""

    def __call__(self, trial: optuna.Trial) -> dict[str, Any] | None:
        return load_function(self.spec, self.sha256)(trial)


def _mapping(fn: Any, attr: str, where: str) -> dict[str, Any]:
    value = getattr(fn, attr, None)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SpaceError(f"{where}: {fn.__name__}.{attr} is {value!r}; give a dict of "
                         "hyperparameter values, e.g. {'lr': 1e-3}")
    return dict(value)


def user_space(spec: str, sha256: str = "") -> SearchSpace:
    """A user's space. With sha256 (a recorded search): SpaceError if its file changed since,
    and its define function keeps checking that, in Ray's searcher too."""
    fn = load_function(spec, sha256)
    source = source_of(spec)
    sha = sha256 or (sha256_of(source) if source else "")
    doc = (inspect.getdoc(fn) or "").strip()
    return SearchSpace(name=spec, description=doc.splitlines()[0] if doc else "",
                       define=SpaceRef(spec, sha256), default=_mapping(fn, "first", source),
                       constants=_mapping(fn, "constants", source), source=source,
                       key=f"{spec}@{sha}")


def file_spaces(path: str) -> list[str]:
    """The spaces in a user's file: its public functions that take one argument."""
    module = _load_file(path, f"{path}:?")
    specs = []
    for name, value in vars(module).items():
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_"):
            try:
                inspect.signature(value).bind(object())
            except TypeError:
                continue
            specs.append(f"{module.__file__}:{name}")
    return specs


def function_spec(fn: Callable[..., Any]) -> str:
    """How a user's function given as a space in Python is recorded (get_space records a
    built-in one by its name): "file.py:function" (scripts and top-level modules) or "package.module:function"."""
    if isinstance(fn, SpaceRef):
        return fn.spec
    qual, module_name = getattr(fn, "__qualname__", None), getattr(fn, "__module__", None)
    if not isinstance(qual, str) or not isinstance(module_name, str):
        raise SpaceError(f"space {fn!r} is not a function; give def my_space(trial): ... "
                         "defined at the top of a .py file")
    if not qual.isidentifier():
        raise SpaceError(f"space {qual} is a lambda, method or nested function; define it at the "
                         "top of a .py file, so that trial workers and a resumed search can "
                         "load it again")
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    parent = getattr(getattr(module, "__spec__", None), "parent", "")
    if module_name.startswith(_PREFIX) or module_name == "__main__" or not parent:
        if not file:
            raise SpaceError(f"space {qual} was defined in an interactive session; put it in a "
                             ".py file, so that trial workers and a resumed search can load it")
        check_signature(fn, qual, file)
        return f"{Path(file).resolve()}:{qual}"
    check_signature(fn, qual, file or module_name)
    return f"{module_name}:{qual}"
