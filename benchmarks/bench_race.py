"""Benchmark: wall time to a good model, vidtune against stock Ray Tune and Optuna.

vidtune's default search, stock Ray Tune (Tuner + OptunaSearch + ASHAScheduler), Optuna alone
(TPE + SuccessiveHalvingPruner, one process per core) and random search with the full budget,
on the same model, data, space, trials and epochs, interleaved over seeds. Records best val
acc, wall time, time to target, epochs, core utilization and an anytime plot
(benchmarks.lib.race).

    python -m benchmarks.bench_race            # 3 seeds of `make search`'s work, about an hour on 2 cores
    python -m benchmarks.bench_race --smoke    # tiny sizes, about a minute: checks the benchmark runs

Writes its section of docs/benchmarks.md (between `<!-- bench_race:start/end -->`) and the
plot docs/race.png. Run it on an otherwise idle machine.

At equal wall time: every method gets the same budget from its start, as many
trials as fit, on each space in turn (benchmarks.lib.race_budget):

    python -m benchmarks.bench_race --budget 8m --spaces default,wide   # 3 seeds: 8m x 4 x 3 x 2, ~3.3 h
    python -m benchmarks.bench_race --budget 10s --smoke                # tiny data, `wide`, under a minute

It writes the section `bench_race_budget` and the plot race-budget.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.lib.common import write_section
from benchmarks.lib.make_search import render_make_search, run_make_search
from benchmarks.lib.race import (
    METHODS,
    load_runs,
    make_race_plan,
    plot_anytime,
    race,
    standing,
)
from benchmarks.lib.race_budget import plot_budget
from benchmarks.lib.race_report import BUDGET_KEY, KEY, render, render_budget
from vidtune.scripts._args import fail
from vidtune.trainable.core.search_config import parse_duration

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, about a minute")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; smoke 1)")
    p.add_argument("--methods", default=None,
                   help=f"semicolon-separated: {', '.join(METHODS)}, or vidtune:field=value,... variants")
    p.add_argument("--results-dir", default=None, help="keep the searches here (default: a temporary folder)")
    p.add_argument("--out", default=str(DOCS / "benchmarks.md"), help="markdown file to update")
    p.add_argument("--png", default=None, help="the anytime plot (default: race.png beside --out)")
    p.add_argument("--from-runs", default=None, metavar="JSON",
                   help="render the section from a saved race_runs.json instead of racing")
    p.add_argument("--make-search-seeds", type=int, default=None,
                   help="then time `make search` for seeds 0..N-1 (default 5; smoke 1, tiny; "
                        "with --budget 0)")
    p.add_argument("--budget", type=parse_duration, default=0.0, metavar="DURATION",
                   help="the race at equal wall time: each method this long per seed and space, "
                        "e.g. 8m")
    p.add_argument("--spaces", default=None,
                   help="with --budget: comma-separated spaces raced in turn (default: default,wide; "
                        "smoke: wide)")
    args = p.parse_args(argv)
    if args.budget:
        return _budget_race(p, args)
    try:
        plan = make_race_plan(args.smoke, args.seeds,
                              tuple(args.methods.split(";")) if args.methods else None)
    except ValueError as exc:
        fail(p, exc)
    png = Path(args.png) if args.png else Path(args.out).with_name("race.png")
    t0 = time.perf_counter()
    n_make = args.make_search_seeds if args.make_search_seeds is not None else (1 if plan.smoke else 5)
    # --smoke: the same command on the tiny smoke search, just to show the part runs.
    extra = ("--smoke-test", "--time-budget", "30s") if plan.smoke else ()
    with tempfile.TemporaryDirectory(prefix="vidtune-race-") as tmp:
        root = str(Path(args.results_dir).resolve()) if args.results_dir else tmp
        runs = load_runs(args.from_runs) if args.from_runs else race(plan, root)
        made = [run_make_search(seed, root, extra) for seed in range(n_make)]
    st = standing(runs)
    plot_anytime(runs, png)
    body = render(plan, runs, st, png, Path(args.out), time.perf_counter() - t0)
    if made:
        body += "\n" + "\n".join(render_make_search(made))
    write_section(args.out, KEY, body)
    print(body, file=sys.stderr)
    return body


def _budget_race(p: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    spaces = args.spaces.split(",") if args.spaces else (["wide"] if args.smoke else ["default", "wide"])
    try:
        from vidtune.trainable.tune.stock import param_space_of

        for space in spaces:
            param_space_of(space)   # stock Ray Tune needs the space written its way
        plans = [make_race_plan(args.smoke, args.seeds,
                                tuple(args.methods.split(";")) if args.methods else None,
                                budget_s=args.budget, space=space) for space in spaces]
    except ValueError as exc:
        fail(p, exc)
    png = Path(args.png) if args.png else Path(args.out).with_name("race-budget.png")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidtune-race-") as tmp:
        root = str(Path(args.results_dir).resolve()) if args.results_dir else tmp
        if args.from_runs:
            runs = load_runs(args.from_runs)
        else:
            runs = []
            for plan in plans:   # one space after the other, seeds and methods interleaved
                runs = race(plan, root, earlier=runs)
    plot_budget(runs, spaces, args.budget, png)
    body = render_budget(plans, runs, png, Path(args.out), time.perf_counter() - t0)
    write_section(args.out, BUDGET_KEY, body)
    print(body, file=sys.stderr)
    return body


if __name__ == "__main__":
    main()
