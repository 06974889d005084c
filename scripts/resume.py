"""Continue an interrupted search (Ctrl-C, killed driver, lost machine) where it stopped.

Finished trials are kept, unfinished ones continue from their last checkpoint, the Optuna
searcher keeps its history and ASHA its rung records.
"""

from __future__ import annotations

import argparse

from vidtune.scripts._args import duration, fail, print_outcome


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("results_dir", help="the experiment folder printed by `vidtune search`")
    p.add_argument("--address", default="", help="resume on a Ray cluster ('auto' or HOST:PORT)")
    p.add_argument("--time-budget", default=None, type=duration, metavar="DURATION",
                   help="a new time budget, e.g. 10m (default: what is left of the search's)")
    args = p.parse_args(argv)
    from vidtune.trainable.tune.driver import resume_search
    from vidtune.trainable.tune.fail_fast import StorageLostError

    try:
        outcome = resume_search(args.results_dir, address=args.address,
                                time_budget_s=args.time_budget)
    except ValueError as exc:
        fail(p, exc)
    except StorageLostError as exc:
        fail(p, exc, status=1)
    print_outcome(outcome, p.prog)
    if outcome.unfinished and not outcome.budget_ended:
        raise SystemExit(130)
    if outcome.all_failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
