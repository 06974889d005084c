"""Benchmark: decoding a 10-minute 720p video (peak RSS, time, before and after) and
a data set's clip cache (videos/s with 1 and 2 processes and a 2-node `ray start` cluster).
The measurement lives in benchmarks.lib.decode.

    python -m benchmarks.bench_decode               # the full run (encodes the videos once, minutes)
    python -m benchmarks.bench_decode --smoke       # tiny sizes: checks the benchmark runs

Writes its own section of docs/benchmarks.md (between `<!-- bench_decode:start/end -->`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.lib.decode import run_decode_bench

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, runs in seconds")
    p.add_argument("--no-cluster", action="store_true", help="skip the 2-node Ray cluster")
    p.add_argument("--repeats", type=int, default=None, help="runs of each measurement "
                   "(default 2; smoke 1)")
    p.add_argument("--work", default=None, help="where the encoded videos are kept between runs "
                   "(default $TMPDIR/vidtune-bench-decode)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file to update (default docs/benchmarks.md)")
    args = p.parse_args(argv)
    return run_decode_bench(args.out, work=args.work, smoke=args.smoke,
                            cluster=not args.no_cluster, repeats=args.repeats)


if __name__ == "__main__":
    main()
