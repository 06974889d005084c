"""Full learning curves, generated once and saved: the data the rung rules are judged on.

Random configurations of a space (the space's first trial, the seed configuration, first),
each trained to max_epochs in a plain process with no Ray and no early stopping, one torch
thread per process. The val acc curves depend only on (config, seed, data), not on the
machine's load, so the rank correlation of each rung rule with the final value
(benchmarks/lib/rung_rules.py) is computed from the file in milliseconds.

    python -m benchmarks.lib.full_curves OUT.jsonl [--n 30] [--workers 2]

One JSON line per config: {"index", "params", "curve": [val acc per epoch], "epoch_s": [...]}.
Lines are appended as configs finish, so a stopped run keeps what it trained; a rerun skips
the indices already in the file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from vidtune.trainable.core.search_config import SearchConfig


def sample_configs(space: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The space's first trial, then n - 1 configs drawn by Optuna's RandomSampler."""
    import optuna

    from vidtune.search_spaces import get_space
    from vidtune.trainable.core.space_check import first_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sp = get_space(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = [first_trial(sp)]
    while len(out) < n:
        trial = study.ask()
        sp.define(trial)
        out.append(dict(trial.params))
        study.tell(trial, 0.0)
    return out


def _train(job: tuple[int, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    import torch

    from vidtune.trainable.core.trial import run_trial

    index, params, cfg_json = job
    torch.set_num_threads(1)
    cfg = SearchConfig.from_json(cfg_json)
    curve: list[float] = []
    epoch_s: list[float] = []

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        curve.append(float(metrics["val_acc"]))
        epoch_s.append(float(metrics.get("epoch_time_s") or 0.0))

    run_trial(params, cfg, report)
    return {"index": index, "params": params, "curve": curve, "epoch_s": epoch_s}


def generate(out: str | Path, cfg: SearchConfig, n: int, workers: int) -> list[dict[str, Any]]:
    """Train n configs of cfg.space to cfg.max_epochs, appending each to out as it ends."""
    from vidtune.data import load_arrays

    load_arrays(cfg.data, progress=True)   # the cache once, before the workers read it
    out = Path(out)
    done = {json.loads(line)["index"] for line in out.read_text().splitlines()} if out.exists() else set()
    jobs = [(i, p, cfg.to_json()) for i, p in enumerate(sample_configs(cfg.space, n, cfg.seed))
            if i not in done]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for row in pool.imap_unordered(_train, jobs):
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"config {row['index']}: {row['curve']}", file=sys.stderr, flush=True)
    return load_curves(out)


def load_curves(path: str | Path) -> list[dict[str, Any]]:
    """The file's rows, by index."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["index"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--n", type=int, default=30, help="configs, the space's first trial included")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--space", default="default")
    p.add_argument("--max-epochs", type=int, default=None, help="default: SearchConfig's")
    p.add_argument("--smoke", action="store_true", help="tiny data and the tiny space")
    args = p.parse_args(argv)
    cfg = SearchConfig(space=args.space)
    if args.smoke:
        from vidtune.data import DataConfig

        cfg = replace(cfg, space="tiny", max_epochs=2,
                      data=DataConfig(num_clips=60, frames=4, height=16, width=16, noise=0.2))
    if args.max_epochs:
        cfg = replace(cfg, max_epochs=args.max_epochs)
    generate(args.out, cfg.resolved(), args.n, args.workers)


if __name__ == "__main__":
    main()
