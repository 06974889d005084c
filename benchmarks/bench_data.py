"""Benchmark: how much of an epoch is data loading, on the default CPU config.

The same epoch is timed fed by the real loader and fed by the same batches held in memory;
the difference, and the time spent inside the loader, over the real epoch is the data-loading
share (goal <= 5 %). The measurement lives in benchmarks.lib.data_share.

    python -m benchmarks.bench_data            # default config, 3 repeats (several minutes on 2 cores)
    python -m benchmarks.bench_data --smoke    # tiny sizes, seconds: checks the benchmark runs

Writes its own section of docs/benchmarks.md (between `<!-- bench_data:start/end -->`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.lib.data_share import DataShare, run_data_bench

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def main(argv: list[str] | None = None) -> DataShare:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, runs in seconds")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3; smoke 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's own default, one per core)")
    p.add_argument("--batch-size", type=int, default=32, help="(default %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file to update (default docs/benchmarks.md)")
    args = p.parse_args(argv)
    return run_data_bench(args.out, smoke=args.smoke, repeats=args.repeats, threads=args.threads,
                          batch_size=args.batch_size)


if __name__ == "__main__":
    main()
