"""Run a hyperparameter search: Optuna TPE proposes, Ray Tune runs trials, ASHA stops weak ones.

With no arguments: a small search on the synthetic benchmark, on this machine's CPUs, in an
embedded Ray; results under ./results/<name>. Add --address to run on a Ray cluster.

--config FILE takes every setting from a search file (TOML, see the user guide's docs/guide/search-spaces.md) or from the
vidtune.json of an earlier search; flags given on the command line override the file.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from vidtune.data import DataConfig
from vidtune.scripts._args import (
    add_config_args,
    add_data_args,
    config_from_args,
    config_values,
    data_config,
    fail,
    print_outcome,
)
from vidtune.trainable.core.search_config import SearchConfig

SMOKE = {"space": "tiny", "num_samples": 4, "max_epochs": 2}
SMOKE_DATA = {"num_clips": 100, "frames": 4, "height": 16, "width": 16}


def build_parser(prog: str | None, defaults: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                add_help=defaults)
    p.add_argument("--config", metavar="FILE", default=None if defaults else argparse.SUPPRESS,
                   help="a search file (.toml) or an earlier search's vidtune.json; flags override it")
    add_config_args(p, SearchConfig, "search", defaults)
    add_data_args(p, defaults)
    p.add_argument("--smoke-test", action="store_true",
                   help="a tiny search (tiny space, 4 trials, 2 epochs, 100 small clips) to check a set-up")
    return p


def make_config(argv: list[str] | None, prog: str | None) -> SearchConfig:
    """The search's config: the defaults, then --config's file, then the flags given."""
    p = build_parser(prog)
    args = p.parse_args(argv)
    try:
        if args.config is None:
            given = sys.argv[1:] if argv is None else argv
            if args.smoke_test:
                for k, v in {**SMOKE, **SMOKE_DATA}.items():
                    setattr(args, k, v)
            if args.time_budget and not any(a.startswith("--num-samples") for a in given):
                args.num_samples = 0   # a budget without --num-samples: as many trials as fit
            return config_from_args(SearchConfig, args, data=data_config(args))
        # Only the flags given override the file: parse again with no defaults.
        flags = build_parser(prog, defaults=False).parse_args(argv)
        overrides = config_values(SearchConfig, flags)
        data = config_values(DataConfig, flags)
        if args.smoke_test:
            overrides.update(SMOKE)
            data.update(SMOKE_DATA)
        cfg = SearchConfig.from_file(args.config, **overrides, data=data)
        if cfg.time_budget_s and "num_samples" not in overrides:
            from vidtune.trainable.core.config_file import read_config_file

            if "num_samples" not in read_config_file(args.config, SearchConfig)[0]:
                cfg = replace(cfg, num_samples=0)   # as with flags: as many trials as fit
        return cfg
    except ValueError as exc:
        fail(p, exc)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    cfg = make_config(argv, prog)   # validated before Ray starts
    p = build_parser(prog)
    from vidtune.trainable.tune.driver import run_search
    from vidtune.trainable.tune.fail_fast import StorageLostError

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
