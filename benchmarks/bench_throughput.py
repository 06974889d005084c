"""Benchmark: an epoch against the hardware's limit. FLOPs per clip, the core's matmul
peak, the levers (bf16 autocast, channels_last, inference_mode, torch.compile), clips/s of each
config class of the default space on 1 and 2 threads, where an epoch's time goes, and val acc
after 6 epochs in fp32 against the new default over 3 seeds. The measurement lives in
benchmarks.lib.throughput.

    python -m benchmarks.bench_throughput                      # every part (~20 min on 2 cores)
    python -m benchmarks.bench_throughput --parts accuracy     # one part; the others are kept
    python -m benchmarks.bench_throughput --smoke --out /tmp/b.md   # tiny sizes: does it run?

Writes its own section of docs/benchmarks.md (between `<!-- bench_throughput:start/end -->`),
from the figures in docs/bench_throughput.json, which each run updates part by part.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from benchmarks.lib.throughput import PARTS, SMOKE, SMOKE_PARTS, Plan, run_throughput_bench

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, runs in seconds")
    p.add_argument("--parts", default=None, help=f"comma-separated, of {','.join(PARTS)} (default "
                   "all; with --smoke all but compile)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds of each timing (default 5)")
    p.add_argument("--threads", default=None, help="torch thread counts to time, e.g. 1,2 (default 1,2)")
    p.add_argument("--out", default=str(DOCS / "benchmarks.md"), help="markdown file to update")
    p.add_argument("--json", default=None, help="figures file, merged part by part (default "
                   "docs/bench_throughput.json; with --smoke none)")
    args = p.parse_args(argv)
    plan = SMOKE if args.smoke else Plan()
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    if args.threads:
        plan = replace(plan, threads=tuple(int(n) for n in args.threads.split(",")))
    chosen = args.parts or ",".join(SMOKE_PARTS if args.smoke else PARTS)
    parts = tuple(x.strip() for x in chosen.split(",") if x.strip())
    json_path = args.json or (None if args.smoke else str(DOCS / "bench_throughput.json"))
    try:
        return run_throughput_bench(args.out, plan, parts, json_path)
    except ValueError as exc:
        p.error(str(exc))


if __name__ == "__main__":
    main()
