"""`make search` as a new user runs it, timed: the default search for several seeds.

Goal: `make search` finishes in under 5 minutes for every seed 0-4 with a best
val acc of at least 0.90. Each run is the command the Makefile runs (`vidtune search` with
MAKE_SEARCH_ARGS and `--seed k`), in a fresh process, timed from the outside: the Python
start, Ray's start and stop, the data check and the search itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GOAL_WALL_S = 300.0
GOAL_BEST = 0.90
# What `make search` adds to `vidtune search` (keep in step with the Makefile's search target).
MAKE_SEARCH_ARGS = ("--time-budget", "4m30s")


@dataclass(frozen=True)
class MakeSearchRun:
    seed: int
    wall_s: float
    best_val_acc: float
    trials: int
    exit_code: int


def make_search_args() -> tuple[str, ...]:
    """The flags of the Makefile's search target, read from the Makefile itself."""
    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    for line in makefile.read_text().splitlines():
        if "vidtune search" in line and "$(BIN)" in line:
            flags = line.split("vidtune search", 1)[1].replace("$(ARGS)", "").split()
            return tuple(flags)
    return MAKE_SEARCH_ARGS


def run_make_search(seed: int, root: str, extra: tuple[str, ...] = ()) -> MakeSearchRun:
    name = f"make-search-s{seed}"
    cmd = [sys.executable, "-m", "vidtune.scripts.cli", "search", *make_search_args(),
           "--seed", str(seed), "--results-dir", root, "--name", name, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    best_file = Path(root) / name / "best.json"
    best = json.loads(best_file.read_text()) if best_file.exists() else None
    trials = len(list((Path(root) / name).glob("trial_*")))
    return MakeSearchRun(seed, wall, float(best["val_acc"]) if best else float("nan"), trials,
                         proc.returncode)


def render_make_search(runs: list[MakeSearchRun]) -> list[str]:
    ok = all(r.exit_code == 0 and r.wall_s < GOAL_WALL_S and r.best_val_acc >= GOAL_BEST
             for r in runs)
    lines = ["", f"`make search` (`vidtune search {' '.join(make_search_args())}`), one fresh "
             f"process per seed, timed from outside. Goal: under {GOAL_WALL_S / 60:.0f} min and "
             f"best val acc >= {GOAL_BEST} for every seed: **{'PASS' if ok else 'FAIL'}**.", "",
             "| seed | wall time | best val acc | trials | exit |", "|---|---|---|---|---|"]
    lines += [f"| {r.seed} | {r.wall_s:.0f} s | {r.best_val_acc:.4f} | {r.trials} | {r.exit_code} |"
              for r in runs]
    return lines
