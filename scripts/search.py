"""Run a hyperparameter search: Optuna TPE proposes, Ray Tune runs trials, ASHA stops weak ones.

With no arguments: a small search on the synthetic benchmark, on this machine's CPUs, in an
embedded Ray; results under ./results/<name>. Add --address to run on a Ray cluster.
"""

from __future__ import annotations

import argparse
import sys

from vidtune.scripts._args import (
    add_config_args,
    add_data_args,
    config_from_args,
    data_config,
    fail,
    print_outcome,
)
from vidtune.trainable.core.search_config import SearchConfig


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, SearchConfig, "search")
    add_data_args(p)
    p.add_argument("--smoke-test", action="store_true",
                   help="a tiny search (tiny space, 4 trials, 2 epochs, 100 small clips) to check a set-up")
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    if args.smoke_test:
        args.space, args.num_samples, args.max_epochs = "tiny", 4, 2
        args.num_clips, args.frames, args.height, args.width = 100, 4, 16, 16
    if args.time_budget and not any(a.startswith("--num-samples") for a in given):
        args.num_samples = 0   # a budget without --num-samples: as many trials as fit
    try:
        cfg = config_from_args(SearchConfig, args, data=data_config(args))   # validated before Ray
    except ValueError as exc:
        fail(p, exc)
    from vidtune.trainable.tune.driver import run_search
    from vidtune.trainable.tune.failures import StorageLostError

    try:
        outcome = run_search(cfg)
    except ValueError as exc:
        fail(p, exc)
    except StorageLostError as exc:
        fail(p, exc, status=1)
    print_outcome(outcome, p.prog)
    if outcome.unfinished and not outcome.budget_ended:
        raise SystemExit(130)   # Ctrl-C; a spent time budget is a planned end
    if outcome.all_failed:   # the same error in every trial: a failed command, no hints
        raise SystemExit(1)
    print(f"analyze: vidtune analyze {outcome.experiment_path}")
    print(f"retrain: vidtune retrain {outcome.experiment_path}")


if __name__ == "__main__":
    main()
