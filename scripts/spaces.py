"""List the named search spaces and the seed configuration each evaluates first."""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.parse_args(argv)
    from vidtune.search_spaces import list_spaces

    for space in list_spaces():
        print(f"{space.name}: {space.description.strip()}")
        print(f"    first trial: {json.dumps(space.default, sort_keys=True)}")
        if space.constants:
            print(f"    fixed: {json.dumps(space.constants, sort_keys=True)}")


if __name__ == "__main__":
    main()
