"""Benchmark: what the search costs and what it buys, measured side by side in one run.

1. epoch time of a trial inside Ray against the plain loop (goal <= 1.05x)
2. data-loading share of epoch time (goal <= 5 %)
3. ASHA + TPE (and with --asha-cap) against random search with the full budget
   (goal: best val acc within 1 point, <= 1/3 of the epochs), and how well early epochs rank
4. per-trial overhead inside and around a trial
5. fractional GPUs: trials at once at gpus_per_trial 0.25 on one (fake) GPU (goal 4)
6. on a CUDA machine only: throughput of 4 packed trials against 1 alone

The parts live in benchmarks.lib (search.py runs them). Ray is started embedded
(address="local") through the search driver, never joined.

    python -m benchmarks.bench_search           # about 20 minutes on 2 cores
    python -m benchmarks.bench_search --smoke   # tiny sizes, under a minute: checks the benchmark runs

Writes its own section of docs/benchmarks.md (between `<!-- bench_search:start/end -->`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.lib.plan import make_plan
from benchmarks.lib.search import run_search_bench
from vidtune.scripts._args import fail

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, under a minute")
    p.add_argument("--seeds", type=int, default=None, help="part 3: seeds 0..N-1 (default 3; smoke 1)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="part 3: trials per search (default 12; smoke 2)")
    p.add_argument("--cpus-per-trial", type=int, default=None,
                   help="parts 1-2: CPUs of the one trial = torch threads (default 1, as `vidtune search`; smoke 1)")
    p.add_argument("--data-repeats", type=int, default=None, help="part 2: timed repeats (default 3)")
    p.add_argument("--results-dir", default=None,
                   help="keep the Ray experiments here (default: a temporary folder, removed)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file to update (default docs/benchmarks.md)")
    args = p.parse_args(argv)
    try:
        plan = make_plan(args.smoke, args.seeds, args.num_samples, args.cpus_per_trial, args.data_repeats)
    except ValueError as exc:
        fail(p, exc)
    return run_search_bench(plan, args.out, args.results_dir)


if __name__ == "__main__":
    main()
