"""Search files: every setting of `vidtune search` in TOML, or in the JSON of a vidtune.json.

A key sits at the top level or in the section of its flag group (`vidtune search --help`):
[search], [budget], [asha], [resources], [storage]; DataConfig's fields go in [data]; a
declared space in [space] (search_spaces/_declared.py). So the flat vidtune.json that a
search writes is itself a valid search file. Keys are field names (`seed` in [data] is
--data-seed). Relative paths are relative to the file's folder.

Checked strictly, with the file and line: unknown keys, keys in the wrong section, and
values of the wrong type. SearchConfig then checks the values as it checks flags.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from vidtune.data import DataConfig

SPACE, DATA = "space", "data"
RECORDED = ("space_sha256",)       # written by a search about itself; a new search records its own


class ConfigFileError(ValueError):
    pass


def line_of(text: str, key: str, section: str = "") -> int | None:
    """The line (1-based) that sets `key` in `section` of a TOML or JSON text, if found."""
    lines = text.splitlines()
    pattern = re.compile(rf'^\s*"?{re.escape(key)}"?\s*[=:]')
    current, fallback = "", None
    for i, line in enumerate(lines, 1):
        header = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1).replace('"', "")
            continue
        if re.match(rf'^\s*{re.escape(section)}\.{re.escape(key)}\s*=', line) and section:
            return i
        if pattern.match(line):
            if current == section:
                return i
            fallback = fallback or i
    return fallback


class _Reader:
    """One file: its text, parsed content, and errors that point at its lines."""

    def __init__(self, path: Path, cls: type) -> None:
        self.path, self.cls = path, cls
        if not path.is_file():
            raise ConfigFileError(f"config file {str(path)!r} does not exist; give a search file "
                                  "(.toml) or the vidtune.json of an earlier search")
        self.text = path.read_text()
        if path.suffix == ".toml":
            try:
                self.content = tomllib.loads(self.text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigFileError(f"{path}: {exc}; fix the TOML") from None
        elif path.suffix == ".json":
            try:
                self.content = json.loads(self.text)
            except json.JSONDecodeError as exc:
                raise ConfigFileError(f"{path} line {exc.lineno}: {exc.msg}; fix the JSON") from None
            if not isinstance(self.content, dict):
                raise ConfigFileError(f"{path}: a config file holds an object of settings")
        else:
            raise ConfigFileError(f"config file {str(path)!r} is neither .toml nor .json")
        self.hints = typing.get_type_hints(cls)
        self.data_hints = typing.get_type_hints(DataConfig)
        self.parsers = {f.name: f.metadata["type"] for f in fields(cls) if "type" in f.metadata}
        self.groups: dict[str, str] = {}          # field -> its section
        self.aliases: dict[str, str] = {}         # flag spelling -> field
        for f in fields(cls):
            if "group" in f.metadata:
                self.groups[f.name] = str(f.metadata["group"]).lower()
            self._alias(f, f.name)
        for f in fields(DataConfig):
            self._alias(f, f"[data] {f.name}")
        self.sections = sorted(set(self.groups.values()) | {DATA, SPACE})

    def _alias(self, f: Any, name: str) -> None:
        flag = str(f.metadata.get("flag", "")).lstrip("-").replace("-", "_")
        if flag and flag != f.name:
            self.aliases[flag] = name

    def at(self, key: str, section: str = "") -> str:
        line = line_of(self.text, key, section)
        return f"{self.path} line {line}" if line else str(self.path)

    def fail(self, key: str, section: str, message: str) -> ConfigFileError:
        return ConfigFileError(f"{self.at(key, section)}: {message}")

    def unknown(self, key: str, section: str, known: list[str]) -> ConfigFileError:
        where = f" in [{section}]" if section else ""
        if key in self.aliases:
            fix = f"write {self.aliases[key]} (the flag's field name)"
        else:
            close = difflib.get_close_matches(key, known, n=1)
            fix = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
        return self.fail(key, section, f"unknown key {key!r}{where}; {fix}")


def _expected(hint: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint))


def _check(value: Any, hint: Any) -> tuple[bool, Any]:
    """(ok, the value as the field takes it)."""
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool), float(value) \
            if isinstance(value, int | float) else value
    if hint is str:
        return isinstance(value, str), value
    if typing.get_origin(hint) is tuple:
        items = [value] if isinstance(value, str) else value
        ok = isinstance(items, list | tuple) and all(isinstance(v, str) for v in items)
        return ok, tuple(items) if ok else value
    args = typing.get_args(hint)
    if type(None) in args:         # str | None
        return value is None or isinstance(value, str), value
    return True, value             # the space: str or a table, checked by get_space


def _relative(base: Path, value: str) -> str:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def read_config_file(path: str | Path, cls: type) -> tuple[dict[str, Any], dict[str, Any], _Reader]:
    """(SearchConfig fields, DataConfig fields, the reader for locating later errors)."""
    r = _Reader(Path(path).expanduser().resolve(), cls)
    values: dict[str, Any] = {}
    data: dict[str, Any] = {}
    top_fields = [f.name for f in fields(cls) if f.name != DATA]
    for key, value in r.content.items():
        if key == DATA:
            if not isinstance(value, dict):
                raise r.fail(key, "", f"data is {value!r}; give a [data] section, e.g. "
                             "[data] source = \"synthetic\"")
            data.update(_data(r, value))
        elif key == SPACE and isinstance(value, dict):
            if SPACE in values:
                line = next((i for i, t in enumerate(r.text.splitlines(), 1)
                             if re.match(r"^\s*\[\s*space\s*\]", t)), None)
                raise ConfigFileError(f"{r.path}{f' line {line}' if line else ''}: space is set "
                                      "twice; keep either the [space] table or space = NAME")
            values[SPACE] = value
        elif key in r.sections and isinstance(value, dict):
            for k, v in value.items():
                if k not in r.groups:
                    raise r.unknown(k, key, sorted(n for n, g in r.groups.items() if g == key))
                if r.groups[k] != key:
                    raise r.fail(k, key, f"{k} belongs in [{r.groups[k]}], not [{key}]")
                if k in values:
                    raise r.fail(k, key, f"{k} is set twice")
                values[k] = _field(r, k, v, key)
        elif key in top_fields:
            if key in values:
                raise r.fail(key, "", f"{key} is set twice")
            values[key] = _field(r, key, value, "")
        else:
            raise r.unknown(key, "", sorted([*r.sections, *top_fields]))
    for key in RECORDED:
        values.pop(key, None)
    base = r.path.parent
    space = values.get(SPACE)
    if isinstance(space, str) and ":" in space:
        target, func = space.rsplit(":", 1)
        if target.endswith(".py") or "/" in target:
            values[SPACE] = f"{_relative(base, target)}:{func}"
    for key in ("results_dir", "storage"):
        if values.get(key):
            values[key] = _relative(base, values[key])
    if "warm_start" in values:
        values["warm_start"] = tuple(_relative(base, p) for p in values["warm_start"])
    if data.get("source") and data["source"] != "synthetic":
        data["source"] = _relative(base, data["source"])
    if data.get("cache_dir"):
        data["cache_dir"] = _relative(base, data["cache_dir"])
    return values, data, r


def _field(r: _Reader, key: str, value: Any, section: str) -> Any:
    if key == DATA:
        raise r.fail(key, section, "data is a section: [data] source = ...")
    if key == SPACE and isinstance(value, dict):
        return value
    if key in r.parsers and isinstance(value, str):   # e.g. time_budget_s = "15m"
        try:
            return r.parsers[key](value)
        except ValueError as exc:
            raise r.fail(key, section, str(exc)) from None
    ok, out = _check(value, r.hints[key])
    if not ok:
        raise r.fail(key, section, f"{key} is {value!r}, but must be {_expected(r.hints[key])}")
    return out


def _data(r: _Reader, table: dict[str, Any]) -> dict[str, Any]:
    known = [f.name for f in fields(DataConfig)]
    out = {}
    for key, value in table.items():
        if key not in known:
            raise r.unknown(key, DATA, known)
        hint = r.data_hints[key]
        ok, v = _check(value, hint)
        if not ok:
            raise r.fail(key, DATA, f"{key} is {value!r}, but must be {_expected(hint)}")
        out[key] = v
    return out


def locate(exc: ValueError, r: _Reader, file_keys: dict[str, str]) -> ValueError:
    """Point a SearchConfig/DataConfig error at the file's line when it names a key the file set.

    file_keys: key -> its section, for the keys the file set and no flag overrode. Errors of
    the checks name their field first ("num_samples is 0, ..."), a space's its parameter.
    """
    param = getattr(exc, "param", None)
    if param is not None and file_keys.get(SPACE) == SPACE:
        section = "space.first" if str(exc).find("first trial") >= 0 else SPACE
        return type(exc)(f"{r.at(param, section)}: {exc}")
    text = str(exc)
    hits = [(m.start(), key) for key in file_keys
            for m in [re.search(rf"\b{re.escape(key)}\b", text)] if m]
    if not hits or str(r.path) in text:
        return exc
    key = min(hits)[1]
    return ConfigFileError(f"{r.at(key, file_keys[key])}: {exc}")


def file_keys(values: dict[str, Any], data: dict[str, Any], r: _Reader) -> dict[str, str]:
    """key -> section of every key a file set (data keys in [data]; others where they were)."""
    out = {}
    for key in values:
        section = ""
        for name, value in r.content.items():
            if isinstance(value, dict) and key in value and name != DATA:
                section = name
        out[key] = SPACE if key == SPACE and isinstance(values[key], dict) else section
    out.update({k: DATA for k in data})
    return out

