"""List search spaces: what each samples, its fixed values, and the configuration it tries first.

Without arguments: the built-in spaces. Arguments may name a built-in space, a user's file
(path/to/spaces.py: each of its spaces), one function in it (path/to/spaces.py:my_space or
module:my_space), or a search file / vidtune.json (the space it searches). User spaces are
checked as `vidtune search` checks them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def describe(dist: BaseDistribution) -> str:
    """IntDistribution(2, 3) -> "int 2..3"; choices -> "one of 16, 32"."""
    if isinstance(dist, CategoricalDistribution):
        return "one of " + ", ".join(map(str, dist.choices))
    if isinstance(dist, IntDistribution | FloatDistribution):
        kind = "int" if isinstance(dist, IntDistribution) else "float"
        step = f", step {dist.step}" if dist.step not in (None, 1) else ""
        return f"{kind} {dist.low:g}..{dist.high:g}{', log' if dist.log else ''}{step}"
    return str(dist)


def space_lines(spec: Any) -> list[str]:
    """The lines `vidtune spaces` prints for one space (SpaceError if it is bad)."""
    from vidtune.search_spaces import DeclaredSpace, get_space, space_label, trace_space
    from vidtune.trainable.core.space_check import check_space, first_trial

    space = get_space(spec)
    check_space(space)
    trace = trace_space(space)
    conditions = ({p.name: str(p.when) for p in space.define.params if p.when is not None}
                  if isinstance(space.define, DeclaredSpace) else {})
    lines = [f"{space_label(spec)}: {space.description.strip()}".rstrip(": ")]
    width = max(map(len, trace.sampled), default=0)
    for name, s in trace.sampled.items():
        when = (f"  (when {conditions[name]})" if name in conditions
                else "  (conditional)" if s.runs < trace.num_runs else "")
        lines.append(f"    {name:<{width}}  {describe(s.distribution)}{when}")
    lines.append(f"    first trial: {json.dumps(first_trial(space), sort_keys=True)}")
    constants = {**space.constants, **trace.returned}
    if constants:
        lines.append(f"    fixed: {json.dumps(constants, sort_keys=True)}")
    return lines


def specs_of(arg: str) -> list[Any]:
    """The spaces an argument names (a file may hold several)."""
    from vidtune.search_spaces import file_spaces

    if arg.endswith((".toml", ".json")):
        from vidtune.trainable.core.search_config import SearchConfig

        return [SearchConfig.from_file(arg).space]
    if arg.endswith(".py"):
        return file_spaces(arg)
    return [arg]


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spaces", nargs="*", metavar="SPACE",
                   help="a space name, path/to/spaces.py[:function], module:function, or a "
                        "search file (.toml / vidtune.json)")
    args = p.parse_args(argv)
    from vidtune.search_spaces import list_spaces

    failed = False
    for arg in args.spaces or [s.name for s in list_spaces()]:
        try:
            specs = specs_of(arg)
        except ValueError as exc:
            print(f"{p.prog}: error: {exc}", file=sys.stderr, flush=True)
            specs, failed = [], True
        for spec in specs:
            try:
                print("\n".join(space_lines(spec)), flush=True)
            except ValueError as exc:
                print(f"{p.prog}: error: {exc}", file=sys.stderr, flush=True)
                failed = True
    if failed:
        raise SystemExit(2)


if __name__ == "__main__":
    main()
