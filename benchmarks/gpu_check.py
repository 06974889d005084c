"""The GPU check (issue 15): the CUDA tests, the memory probe, the data path's share and packed
searches at 1, 2, 4 and 8 trials per GPU, in at most 8 minutes on one GPU. The work lives in
benchmarks.lib.gpu_check.

    python -m benchmarks.gpu_check          # on a CUDA machine (`make gpu-check`)
    python -m benchmarks.gpu_check --cpu    # as on a machine without CUDA: the GPU parts are
                                         # skipped, each saying so (what `make test` runs)

Writes its own section of docs/benchmarks.md (between `<!-- gpu_check:start/end -->`).
Exit status 0 when every check passed (or was skipped for want of a GPU), 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.lib.gpu_check import GpuCheck, run_gpu_check

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"
GPU_TESTS = ROOT / "tests" / "test_gpu.py"


def main(argv: list[str] | None = None) -> GpuCheck:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true",
                   help="behave as on a machine without CUDA (the GPU parts are skipped)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file to update (default docs/benchmarks.md)")
    p.add_argument("--results-dir", default=None,
                   help="keep the packed searches' results here (default: a temporary folder)")
    args = p.parse_args(argv)
    check = run_gpu_check(args.out, GPU_TESTS, cpu_mode=args.cpu, results_dir=args.results_dir)
    print(f"\nwritten to {args.out}")
    return check


if __name__ == "__main__":
    raise SystemExit(0 if main().ok else 1)
