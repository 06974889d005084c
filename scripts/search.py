"""Run a hyperparameter search: Optuna TPE proposes, Ray Tune runs trials, ASHA stops weak ones.

With no arguments: a small search on the synthetic benchmark, on this machine's CPUs, in an
embedded Ray; results under ./results/<name>. Add --address to run on a Ray cluster.
"""

from __future__ import annotations

import argparse

from vidtune.scripts._args import add_data_args, data_config, fail
from vidtune.trainable.core.search_config import SearchConfig

_S = SearchConfig()


def add_search_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search")
    g.add_argument("--space", default=_S.space, help="named search space, see `vidtune spaces` (default %(default)s)")
    g.add_argument("--num-samples", type=int, default=_S.num_samples, help="trials in total (default %(default)s)")
    g.add_argument("--max-epochs", type=int, default=_S.max_epochs, help="epochs of a trial ASHA never stops (default %(default)s)")
    g.add_argument("--grace-period", type=int, default=_S.grace_period, help="ASHA: epochs before the first cut (default %(default)s)")
    g.add_argument("--reduction-factor", type=float, default=_S.reduction_factor, help="ASHA: keep the top 1/N at each rung (default %(default)s)")
    g.add_argument("--asha-cap", action="store_true",
                   help="ASHA: let at most 1/N of the trials at a rung through, whatever order they "
                        "arrive in (fewer epochs, lower best accuracy: see docs/benchmarks.md)")
    g.add_argument("--batch-size", type=int, default=_S.batch_size, help="(default %(default)s; the 'wide' space samples it)")
    g.add_argument("--seed", type=int, default=_S.seed, help="TPE sampler and trial seed (default %(default)s)")
    g.add_argument("--max-concurrent", type=int, default=_S.max_concurrent, help="cap on trials at once; 0 = what resources allow")
    g.add_argument("--max-failures", type=int, default=_S.max_failures, help="retries of a crashed trial from its checkpoint (default %(default)s)")
    r = p.add_argument_group("resources and placement")
    r.add_argument("--cpus-per-trial", type=float, default=_S.cpus_per_trial, help="(default %(default)s)")
    r.add_argument("--gpus-per-trial", type=float, default=_S.gpus_per_trial, help="fractional GPUs, e.g. 0.25 (default %(default)s)")
    r.add_argument("--address", default=_S.address, help="Ray cluster: 'auto' or HOST:PORT (default: embedded local Ray)")
    r.add_argument("--num-cpus", type=int, default=_S.num_cpus, help="embedded Ray: CPUs to use (default all)")
    r.add_argument("--num-gpus", type=float, default=_S.num_gpus, help="embedded Ray: GPUs to expose (default autodetect)")
    r.add_argument("--name", default=_S.name, help="experiment name (default search-<timestamp>)")
    r.add_argument("--results-dir", default=_S.results_dir, help="local results root (default ./%(default)s)")
    r.add_argument("--storage", default=_S.storage, help="shared path or URI for multi-node clusters")
    r.add_argument("--optuna-storage", default=_S.optuna_storage,
                   help="database URL for the Optuna study (default: sqlite optuna.db in the results)")


def search_config(args: argparse.Namespace) -> SearchConfig:
    return SearchConfig(
        space=args.space, num_samples=args.num_samples, max_epochs=args.max_epochs,
        grace_period=args.grace_period, reduction_factor=args.reduction_factor,
        promotion_cap=args.asha_cap, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent, max_failures=args.max_failures,
        batch_size=args.batch_size, seed=args.seed, name=args.name,
        results_dir=args.results_dir, storage=args.storage, address=args.address,
        optuna_storage=args.optuna_storage,
        num_cpus=args.num_cpus, num_gpus=args.num_gpus, data=data_config(args),
    )


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_args(p)
    add_data_args(p)
    p.add_argument("--smoke-test", action="store_true",
                   help="a tiny search (tiny space, 4 trials, 2 epochs, 100 small clips) to check a set-up")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.space, args.num_samples, args.max_epochs = "tiny", 4, 2
        args.num_clips, args.frames, args.height, args.width = 100, 4, 16, 16
    try:
        cfg = search_config(args)          # validated here, before Ray starts
    except ValueError as exc:
        fail(p, exc)
    from vidtune.trainable.tune.driver import print_outcome, run_search

    try:
        outcome = run_search(cfg)
    except ValueError as exc:
        fail(p, exc)
    print_outcome(outcome)
    if outcome.unfinished:
        raise SystemExit(130)
    print(f"analyze: vidtune analyze {outcome.experiment_path}")
    print(f"retrain: vidtune retrain {outcome.experiment_path}")


if __name__ == "__main__":
    main()
