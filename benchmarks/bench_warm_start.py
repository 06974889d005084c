"""Benchmark: a search warm-started from another seed's finished search against the same search
started cold; epochs to reach the cold search's best val acc (benchmarks/lib/warm_start.py).

    python -m benchmarks.bench_warm_start            # 4 seeds x 2 searches of 16 trials, ~10 min on 2 cores
    python -m benchmarks.bench_warm_start --smoke    # tiny sizes, about a minute: checks the script runs
    python -m benchmarks.bench_warm_start --benchmark default --uses all,full --jobs 2
                                                  # on make search's data, 2 searches at once

Writes its section of docs/benchmarks.md (between `<!-- bench_warm_start:start/end -->`) and
prints it.
Ray is started as an embedded local instance by the driver, never joined.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
KEY = "bench_warm_start"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark runs")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 4; smoke 2)")
    p.add_argument("--num-samples", type=int, default=None, help="trials per search (default 16)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once (default 1: deterministic epoch counts)")
    p.add_argument("--uses", default="all",
                   help="comma-separated --warm-start-use values, a warm search of each per seed "
                        "(all, full, explore; default all)")
    p.add_argument("--benchmark", default="reduced", choices=("reduced", "default"),
                   help="reduced: 500 clips of 6x16x16 (bench_search's); default: make search's "
                        "1000 clips of 8x32x32")
    p.add_argument("--jobs", type=int, default=1,
                   help="searches at once, each one trial at a time in its own process "
                        "(the epoch counts do not change; default 1)")
    p.add_argument("--cold-from", default=None, metavar="DIR",
                   help="use the cold searches kept (--keep) in DIR by an earlier run of the "
                        "same sizes instead of running them again (they repeat exactly)")
    p.add_argument("--out", default=str(DOCS / "benchmarks.md"), help="markdown file to update")
    p.add_argument("--keep", default=None, help="keep the searches in this folder (default: a temp dir)")
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 2:
        p.error(f"--seeds is {args.seeds}; a warm start needs another seed's search: give >= 2")
    if args.jobs < 1:
        p.error(f"--jobs is {args.jobs}; give 1 or more searches at once")
    from vidtune.trainable.core.search_config import WARM_START_USES

    uses = tuple(u.strip() for u in args.uses.split(",") if u.strip())
    if not uses or any(u not in WARM_START_USES for u in uses):
        p.error(f"--uses is {args.uses!r}; give some of {', '.join(WARM_START_USES)}, e.g. all,full")
    from benchmarks.lib.common import machine_line, write_section
    from benchmarks.lib.warm_start import (
        cold_name,
        make_plan,
        render,
        run_warm_start_bench,
    )

    plan = make_plan(args.smoke, args.seeds, args.num_samples, args.max_concurrent, uses,
                     args.benchmark)
    missing = [s for s in plan.seeds if args.cold_from and not (Path(args.cold_from) / cold_name(s)).is_dir()]
    if missing:
        p.error(f"--cold-from is {args.cold_from!r}, which lacks the cold search of seed(s) "
                f"{missing}; give the --keep folder of an earlier run of the same sizes")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pairs = run_warm_start_bench(plan, args.keep or tmp, args.jobs, args.cold_from)
    text = render(plan, pairs, machine_line(), time.perf_counter() - t0, args.jobs)
    # make search's benchmark keeps its own section; the reduced one (and a smoke run) the first.
    write_section(args.out, f"{KEY}_default" if plan.benchmark == "default" else KEY, text)
    print(text)
    print(f"written to {args.out}", file=sys.stderr)
    return text


if __name__ == "__main__":
    main()
