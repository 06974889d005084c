"""Benchmark: a search of thousands of sub-second trials, its driver killed once.

2,000 trials of the `tiny` space on tiny clips on this machine's CPUs (2 trials at once), the
driver SIGKILLed when 1,000 have finished and `vidtune resume`d; against the trial count
(250, 500, 1000, 2000): per-trial overhead, driver RSS and CPU, the experiment snapshot's time
and size, the results folder and optuna.db per trial, `vidtune analyze`, the Optuna mirror's
write and reconcile, resume to the first new trial, and TPE's proposal time
(benchmarks.lib.scale).

    python -m benchmarks.bench_scale                  # about 10 minutes on 2 cores
    python -m benchmarks.bench_scale --smoke          # 32 trials killed at 12, ~1 minute: checks it runs
    python -m benchmarks.bench_scale --baseline docs/bench_scale_before.json   # before/after table

Writes its section of docs/benchmarks.md (between `<!-- bench_scale:start/end -->`) and the
run's figures as JSON (--json, default docs/bench_scale.json beside --out). Run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.lib.common import write_section
from benchmarks.lib.scale import make_scale_plan, run_scale, with_cache
from benchmarks.lib.scale_report import KEY, render
from vidtune.scripts._args import fail

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="32 trials, killed at 12")
    p.add_argument("--trials", type=int, default=None,
                   help="trials in the search (default 2000; killed at half, marks at 1/8, 1/4, 1/2, 1)")
    p.add_argument("--results-dir", default=None, help="keep the search here (default: a temporary folder)")
    p.add_argument("--cache-dir", default=None, help="the clip cache (default $VIDTUNE_CACHE or ~/.cache/vidtune)")
    p.add_argument("--baseline", default=None, metavar="JSON",
                   help="figures of an earlier run (its --json) for a before/after table")
    p.add_argument("--baseline-note", default="", help="one line on what the baseline ran")
    p.add_argument("--out", default=str(DOCS / "benchmarks.md"), help="markdown file to update")
    p.add_argument("--json", default=None, help="where the figures go (default bench_scale.json beside --out)")
    args = p.parse_args(argv)
    try:
        plan = with_cache(make_scale_plan(args.smoke, args.trials), args.cache_dir)
        baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    except (ValueError, OSError) as exc:
        fail(p, exc)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None   # a shared machine shows here
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidtune-scale-") as tmp:
        root = Path(args.results_dir) if args.results_dir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        run = run_scale(plan, root)
    figures = {**run.to_json(), "load_start": load}
    out = Path(args.json) if args.json else Path(args.out).with_name("bench_scale.json")
    out.write_text(json.dumps(figures, indent=1) + "\n")
    body = render(figures, time.perf_counter() - t0, baseline, args.baseline_note)
    write_section(args.out, KEY, body)
    print(body, file=sys.stderr)
    return body


if __name__ == "__main__":
    main()
