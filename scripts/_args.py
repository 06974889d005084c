"""Command-line flags built from the config dataclasses, and helpers shared by the commands.

Each field of DataConfig and SearchConfig carries its help text in its metadata; the flag is
--field-name (or metadata["flag"]). So a setting is written once, in its config class.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from vidtune.data import DataConfig

if TYPE_CHECKING:
    from vidtune.trainable.tune.driver import SearchOutcome

C = TypeVar("C")


def _flag(f: Field[Any]) -> str:
    return str(f.metadata.get("flag", "--" + f.name.replace("_", "-")))


def _dest(f: Field[Any]) -> str:
    return _flag(f).lstrip("-").replace("-", "_")


def _parser(f: Field[Any], kind: type) -> Any:
    """The field's own parser (metadata["type"], e.g. parse_duration) or its type; a
    ValueError becomes argparse's one-line error with the parser's message."""
    parse = f.metadata.get("type", kind)

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def duration(text: str) -> float:
    """argparse type for --time-budget: '15m' -> 900.0, with the parser's message on error."""
    from vidtune.trainable.core.search_config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scalar(hint: Any) -> type:
    """int, float, str or bool from a field's type (str | None -> str; tuple[str, ...] -> str,
    for a flag that takes several values; the space's str | dict | function -> str)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        hint = typing.get_args(hint)[0]
    if hint not in (int, float, str, bool):
        raise TypeError(f"no flag for a field of type {hint!r}")
    return hint


def config_fields(cls: type) -> list[tuple[Field[Any], type]]:
    """The fields of a config dataclass that are flags (those with help), with their types
    (a field with its own parser, metadata["type"], is read as text)."""
    hints = typing.get_type_hints(cls)
    return [(f, str if "type" in f.metadata and not _is_scalar(hints[f.name]) else _scalar(hints[f.name]))
            for f in fields(cls) if "help" in f.metadata]


def _is_scalar(hint: Any) -> bool:
    try:
        _scalar(hint)
    except TypeError:
        return False
    return True


def add_config_args(parser: argparse.ArgumentParser, cls: type, default_group: str,
                    defaults: bool = True) -> None:
    """One flag per field of `cls`, in argument groups named by metadata["group"].

    defaults=False: flags not given are left out of the namespace (argparse.SUPPRESS), which
    tells the flags a user gave, to override a search file with.
    """
    groups: dict[str, Any] = {}
    for f, kind in config_fields(cls):
        title = str(f.metadata.get("group", default_group))
        group = groups.setdefault(title, parser.add_argument_group(title))
        default = None if f.default is MISSING else f.default
        if not defaults:
            default = argparse.SUPPRESS
        if kind is bool:   # --flag, and --no-flag where it is on by default
            action = argparse.BooleanOptionalAction if f.default is True else "store_true"
            group.add_argument(_flag(f), dest=_dest(f), action=action,
                               default=bool(default) if defaults else default,
                               help=f.metadata["help"])
            continue
        if isinstance(default, tuple) and "nargs" not in f.metadata:   # e.g. conv widths:
            default = ",".join(map(str, default))                      # shown, parsed as "32,64,128"
        shown = "" if (default in (None, "", 0.0) and "type" in f.metadata) \
            or default in (None, "", (), argparse.SUPPRESS) else " (default %(default)s)"
        group.add_argument(_flag(f), dest=_dest(f), type=_parser(f, kind), default=default,
                           nargs=f.metadata.get("nargs"), metavar=f.metadata.get("metavar"),
                           choices=f.metadata.get("choices"), help=f.metadata["help"] + shown)


def config_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """{field: value} of the flags of `cls` in a namespace (None and absent ones left out)."""
    return {f.name: getattr(args, _dest(f)) for f, _ in config_fields(cls)
            if getattr(args, _dest(f), None) is not None}


def config_from_args(cls: type[C], args: argparse.Namespace, **nested: Any) -> C:
    """`cls` from the parsed flags (fields left None keep their defaults) and nested configs."""
    assert is_dataclass(cls)
    return cls(**config_values(cls, args), **nested)


def add_data_args(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    add_config_args(parser, DataConfig, "data", defaults)


def data_config(args: argparse.Namespace) -> DataConfig:
    return config_from_args(DataConfig, args)


def print_epoch(metrics: dict[str, float], total: int) -> None:
    """One line per epoch on stderr, for `vidtune train` and `vidtune retrain`."""
    print(f"epoch {int(metrics['epoch']):>3}/{total}  train_loss {metrics['train_loss']:.4f}  "
          f"val_loss {metrics['val_loss']:.4f}  val_acc {metrics['val_acc']:.4f}  "
          f"({metrics['epoch_time_s']:.1f}s)", file=sys.stderr, flush=True)


def print_outcome(outcome: SearchOutcome, prog: str = "vidtune search") -> None:
    """The end of `vidtune search` and `vidtune resume`: counts, errors by message, the best,
    where to resume. When every trial errored, the most common error goes to stderr as the
    command's error (the caller exits 1)."""
    n, path = outcome.num_trials, outcome.experiment_path
    tracebacks = f"full tracebacks: {path}/trial_*/error.txt"
    print(f"\n{n} trials, {outcome.num_errors} errored")
    for warning in outcome.warnings:
        print(f"warning: {warning}")
    if outcome.all_failed:
        (line, count), *others = outcome.errors or (("unknown error", n),)
        head = line if count == n else f"{count} with {line}"
        print(f"{prog}: error: {n} of {n} trials failed: {head}", file=sys.stderr)
        for other, k in others:
            print(f"  {k} with {other}", file=sys.stderr)
        print(tracebacks, file=sys.stderr)
        print(f"results: {path}")
        return
    if outcome.errors:
        print(f"{outcome.num_errors} of {n} trials failed:")
        for line, count in outcome.errors:
            print(f"  {count}x {line}")
        print(f"  {tracebacks}")
    if outcome.best is None:
        print("no trial reported a validation accuracy")
    else:
        b = outcome.best
        print(f"best val_acc {b.val_acc:.4f} (trial {b.trial_id}, epoch {b.epoch})")
        print("best config: " + json.dumps(b.params, sort_keys=True))
    print(f"results: {path}")
    if outcome.budget_ended:
        print(f"time budget spent ({outcome.wall_s:.0f} s of {outcome.budget_s:.0f} s)"
              + (f", {outcome.unfinished} trials unfinished" if outcome.unfinished else "")
              + f"; to search on: vidtune resume {path} --time-budget 10m")
    elif outcome.unfinished:
        print(f"interrupted with {outcome.unfinished} trials to go; continue with:\n"
              f"  vidtune resume {path}")


def running_search_note(model: str) -> str | None:
    """For evaluate and predict: a note if the search a model was retrained from still runs
    (a later trial may beat it); None for a finished search or a model from `vidtune train`."""
    from pathlib import Path

    from vidtune.trainable.core.lease import running_note

    try:
        source = json.loads((Path(model) / "config.json").read_text()).get("source_trial") or {}
    except (OSError, ValueError, AttributeError):
        return None
    note = running_note(str(source["results_dir"])) if source.get("results_dir") else None
    return note and note.split(";")[0] + "; a later trial may beat the one this model retrains"


def fail(parser: argparse.ArgumentParser, exc: Exception, status: int = 2) -> typing.NoReturn:
    """Print a clean one-line error (no traceback) and exit 2, as argparse does (bad input);
    status 1 for a command that started and then failed."""
    parser.exit(status, f"{parser.prog}: error: {exc}\n")
