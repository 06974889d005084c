"""A declared space: the [space] table of a search file, sampled by a small define-by-run object.

    [space]
    conv_blocks = { low = 2, high = 3 }                 # an int range (both bounds ints)
    lr = { low = 1e-4, high = 3e-2, log = true }        # a float range on a log scale
    conv_base = [16, 32, 48]                            # choices
    conv_widths = [[16, 32], [32, 64, 128]]             # conv widths as lists
    lstm_layers = [1, 2]
    dropout = { low = 0.0, high = 0.5, when = "lstm_layers > 1" }   # conditional
    spatial_pool = 2                                    # a plain value: a constant

    [space.first]                                       # optional: the first trial
    conv_blocks = 3

Parameters are sampled in the order written, so `when` may name any parameter above it.
Conv widths chosen as lists reach Optuna as strings ("16-32"): its categorical choices hold
only numbers, strings and bools. to_hparams() turns them back into a tuple.
"""

from __future__ import annotations

import ast
import hashlib
import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from vidtune.search_spaces._types import SearchSpace, SpaceError

FIRST = "first"                                  # the sub-table with the first trial
RANGE_KEYS = ("low", "high", "log", "step", "when")
CHOICE_KEYS = ("choices", "when")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
    "<": operator.lt, ">": operator.gt, "in": lambda a, b: a in b,
}
_WHEN = re.compile(r"^\s*([A-Za-z_]\w*)\s*(==|!=|<=|>=|<|>|in)\s*(.+?)\s*$")


def encode_widths(widths: Any, name: str) -> str:
    """[32, 64, 128] -> "32-64-128" (Optuna's choices are scalars)."""
    if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise SpaceError(f"space parameter {name!r}: choice {widths!r} is not a list of positive "
                         "ints, e.g. [32, 64, 128]", param=name)
    return "-".join(str(w) for w in widths)


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    value: Any

    def holds(self, values: Mapping[str, Any]) -> bool:
        return self.name in values and bool(_OPS[self.op](values[self.name], self.value))

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value!r}"


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                        # "int", "float" or "categorical"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: Condition | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class DeclaredSpace:
    """The define-by-run function of a declaration; pickles by value (Ray's searcher)."""

    params: tuple[Param, ...]

    def __call__(self, trial: optuna.Trial) -> None:
        values: dict[str, Any] = {}
        for p in self.params:
            if p.when is None or p.when.holds(values):
                values[p.name] = p.suggest(trial)


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _condition(text: Any, name: str, before: list[str]) -> Condition:
    m = _WHEN.match(text) if isinstance(text, str) else None
    if m is None:
        raise SpaceError(f"space parameter {name!r}: when = {text!r} is not NAME OP VALUE, e.g. "
                         "when = \"lstm_layers > 1\" (OP: == != < <= > >= in)", param=name)
    other, op, raw = m.groups()
    if other not in before:
        raise SpaceError(f"space parameter {name!r}: when refers to {other!r}, which is not a "
                         f"parameter sampled above it; above it: {', '.join(before) or 'none'}",
                         param=name)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise SpaceError(f"space parameter {name!r}: when = {text!r}: {raw!r} is not a number, "
                         "quoted string or list", param=name) from None
    return Condition(other, op, value)


def _choices(name: str, choices: Any) -> tuple[Any, ...]:
    if not isinstance(choices, list) or not choices:
        raise SpaceError(f"space parameter {name!r} has no choices ({choices!r}); give at least "
                         f"one, e.g. {name} = [1, 2]", param=name)
    out: list[Any] = []
    for c in choices:
        if isinstance(c, list):
            if name != "conv_widths":
                raise SpaceError(f"space parameter {name!r}: choice {c!r} is a list; only "
                                 "conv_widths takes lists", param=name)
            out.append(encode_widths(c, name))
        elif isinstance(c, bool | int | float | str):
            out.append(c)
        else:
            raise SpaceError(f"space parameter {name!r}: choice {c!r} is not a number, string "
                             "or bool", param=name)
    return tuple(out)


def _param(name: str, value: Any, before: list[str]) -> Param:
    if isinstance(value, list):
        return Param(name, "categorical", choices=_choices(name, value))
    keys = CHOICE_KEYS if "choices" in value else RANGE_KEYS
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise SpaceError(f"space parameter {name!r}: unknown key {unknown[0]!r}; a range takes "
                         f"{', '.join(RANGE_KEYS)}, a choice takes {', '.join(CHOICE_KEYS)}",
                         param=name)
    when = _condition(value["when"], name, before) if "when" in value else None
    if "choices" in value:
        return Param(name, "categorical", choices=_choices(name, value["choices"]), when=when)
    if "low" not in value or "high" not in value:
        raise SpaceError(f"space parameter {name!r} needs low and high, e.g. "
                         f"{name} = {{ low = 1, high = 4 }}, or a list of choices", param=name)
    low, high, step, log = value["low"], value["high"], value.get("step"), value.get("log", False)
    if not _number(low) or not _number(high) or (step is not None and not _number(step)):
        raise SpaceError(f"space parameter {name!r}: low, high and step must be numbers "
                         f"(low {low!r}, high {high!r})", param=name)
    if not isinstance(log, bool):
        raise SpaceError(f"space parameter {name!r}: log is {log!r}; use true or false", param=name)
    if low > high:
        raise SpaceError(f"space parameter {name!r}: low {low} is above high {high}; swap them",
                         param=name)
    if log and low <= 0:
        raise SpaceError(f"space parameter {name!r}: a log scale needs low > 0, not {low}",
                         param=name)
    if step is not None and (step <= 0 or (log and step is not None)):
        raise SpaceError(f"space parameter {name!r}: step {step} must be > 0 and cannot go with "
                         "log = true", param=name)
    whole = all(isinstance(x, int) for x in (low, high, step) if x is not None)
    return Param(name, "int" if whole else "float", low, high, log, step, when=when)


def parse(spec: Mapping[str, Any]) -> tuple[DeclaredSpace, dict[str, Any], dict[str, Any]]:
    """(the define-by-run object, the constants, the first trial) of a declaration."""
    params: list[Param] = []
    constants: dict[str, Any] = {}
    first: dict[str, Any] = {}
    for name, value in spec.items():
        if name == FIRST:
            if not isinstance(value, Mapping):
                raise SpaceError(f"space {FIRST} is {value!r}; give a table of values, e.g. "
                                 f"[space.{FIRST}] with lr = 1e-3", param=FIRST)
            first = dict(value)
        elif isinstance(value, list | Mapping):
            params.append(_param(name, value, [p.name for p in params]))
        elif isinstance(value, bool | int | float | str):
            constants[name] = value
        else:
            raise SpaceError(f"space parameter {name!r} is {value!r}; give a value, a list of "
                             "choices or a range { low = ..., high = ... }", param=name)
    if "conv_widths" in first and isinstance(first["conv_widths"], list):
        first["conv_widths"] = encode_widths(first["conv_widths"], "conv_widths")
    if not params:
        raise SpaceError("the declared space samples nothing; give at least one range or list "
                         "of choices, e.g. lr = { low = 1e-4, high = 1e-2, log = true }")
    return DeclaredSpace(tuple(params)), constants, first


_CACHE: dict[str, SearchSpace] = {}


def declaration_key(spec: Mapping[str, Any]) -> str:
    """A declared space's identity for caches: the hash of its table."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return "declared:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def declared_space(spec: Mapping[str, Any]) -> SearchSpace:
    key = declaration_key(spec)
    if key not in _CACHE:
        define, constants, first = parse(spec)
        names = ", ".join(p.name for p in define.params)
        _CACHE[key] = SearchSpace("declared", f"the [space] of a search file: {names}", define,
                                  first, constants, key=key)
    return _CACHE[key]
