"""Benchmark (issue 13): wall time to a good model, vidtune against stock Ray Tune and Optuna.

vidtune's default search, stock Ray Tune (Tuner + OptunaSearch + ASHAScheduler), Optuna alone
(TPE + SuccessiveHalvingPruner, one process per core) and random search with the full budget,
on the same model, data, space, trials and epochs, interleaved over seeds. Records best val
acc, wall time, time to target, epochs, core utilization and an anytime plot
(benchmarks.lib.race).

    python -m benchmarks.bench_race            # 3 seeds of `make search`'s work, about an hour on 2 cores
    python -m benchmarks.bench_race --smoke    # tiny sizes, about a minute: checks the benchmark runs

Writes its section of docs/benchmarks.md (between `<!-- bench_race:start/end -->`) and the
plot docs/race.png. Run it on an otherwise idle machine.
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
from benchmarks.lib.race_report import KEY, render
from vidtune.scripts._args import fail

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
                   help="then time `make search` for seeds 0..N-1 (default 5; smoke 1, tiny)")
    args = p.parse_args(argv)
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


if __name__ == "__main__":
    main()
