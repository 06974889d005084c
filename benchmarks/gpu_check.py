"""The GPU check (issues 15 and 23): on one GPU, in at most 8 minutes, the CUDA tests, the
dtypes, the memory probe, the data path's share and packed trials at 1, 2, 4 and 8 per GPU
(plain processes, no Ray). The work lives in benchmarks/lib/gpu_check.py.

    python3 benchmarks/gpu_check.py                  # on the GPU machine (`make gpu-check`); $OUT or --out
    python3 benchmarks/gpu_check.py --cpu --out DIR  # the same parts on the CPU at smoke sizes
    python3 benchmarks/gpu_check.py --fold DIR       # here: DIR's section into docs/benchmarks.md

It runs from this source tree with no install: vidtune is imported through a tree of
symlinks (.gpu_tree/vidtune -> the folders, as `make typecheck` reads them), and optuna,
when Python has none, from the pure-Python wheels in .whl/ (docs/benchmarks.md, part 6).
Exit status 0 when every check passed, 1 otherwise (or when torch cannot use the GPU that
nvidia-smi lists, unless --cpu).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / ".gpu_tree"
PACKAGES = ("data", "search_spaces", "trainable", "analysis", "scripts")


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:   # a finder that refuses it (the tests' stand-in for a missing package)
        return False


def use_source_tree() -> list[str]:
    """Make `vidtune` this checkout's code without an install, for this process and every
    child it starts (PYTHONPATH): the shim tree first, then pure-Python wheels from .whl/ for
    what Python lacks (optuna and colorlog on the device machine). Returns the paths added."""
    package = TREE / "vidtune"
    package.mkdir(parents=True, exist_ok=True)
    links = {name: ROOT / "vidtune" / name for name in ("__init__.py", "_lazy.py")}
    links.update({name: ROOT / name for name in PACKAGES})
    for name, target in links.items():
        link = package / name
        if not (link.is_symlink() and link.resolve() == target.resolve()):
            link.unlink(missing_ok=True)
            link.symlink_to(os.path.relpath(target, package))
    # The shim first, so that `vidtune` is the shim and not this checkout's vidtune/ folder;
    # then the checkout itself, for `benchmarks` (run as a script, only benchmarks/ is on the path).
    added = [str(TREE), str(ROOT)]
    for wheel in sorted((ROOT / ".whl").glob("*-py3-none-any.whl")):
        name = wheel.name.split("-")[0].lower()
        if not importable(name):   # an installed one (a venv, pip --target) wins
            added.append(str(wheel))
    sys.path[:0] = added
    os.environ["PYTHONPATH"] = os.pathsep.join([*added, *filter(None, [os.environ.get("PYTHONPATH")])])
    importlib.invalidate_caches()
    return added


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true",
                   help="run every part on the CPU at smoke sizes (the probe is skipped)")
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "results" / "gpu_check"),
                   help="folder for gpu_check.md/.json/.log and the figure (default $OUT, else "
                        "results/gpu_check)")
    p.add_argument("--fold", metavar="DIR", default=None,
                   help="write the section a device run left in DIR into --docs; runs nothing")
    p.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="the markdown file --fold writes (default docs/benchmarks.md)")
    p.add_argument("--parts", default="", help=argparse.SUPPRESS)      # tests: a subset, "a,b"
    p.add_argument("--packings", default="", help=argparse.SUPPRESS)             # tests: e.g. 1,2
    args = p.parse_args(argv)
    added = use_source_tree()

    from benchmarks.lib import gpu_check

    if args.fold:
        try:
            print(gpu_check.fold(args.fold, args.docs))
        except ValueError as exc:
            print(f"gpu-check --fold: {exc}", file=sys.stderr)
            return 1
        return 0
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / "gpu_check.log").open("w")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    import vidtune

    log(f"vidtune from {Path(vidtune.__file__).parent}; on the path: {', '.join(added)}")
    missing = [m for m in ("ray", "av", "optuna") if not importable(m)]
    log(f"not importable here: {', '.join(missing) or 'none'}")
    parts = tuple(x.strip() for x in args.parts.split(",") if x.strip()) or gpu_check.PARTS
    unknown = sorted(set(parts) - set(gpu_check.PARTS))
    if unknown:
        p.error(f"--parts {', '.join(unknown)}: unknown; known: {', '.join(gpu_check.PARTS)}")
    plan = gpu_check.GpuPlan.smoke(str(out / "cache")) if args.cpu else gpu_check.GpuPlan()
    if args.packings:
        plan = replace(plan, packings=tuple(int(k) for k in args.packings.split(",")))
    try:
        check = gpu_check.run_gpu_check(out, ROOT / "tests" / "test_gpu.py", cpu_mode=args.cpu,
                                        plan=plan, parts=parts, log=log)
    except SystemExit as exc:   # the preflight: one line, no section
        log(str(exc))
        return 1
    print(gpu_check.render(check))
    log(f"written to {out}: {', '.join(f for f in gpu_check.FILES if (out / f).exists())}")
    return 0 if check.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
