"""Watch a search in optuna-dashboard, while it runs or after: its Optuna mirror, on localhost.

The mirror (vidtune.trainable.tune.optuna_mirror) holds every trial of the search: running ones
with their val_acc per epoch as they arrive, finished ones with their state (COMPLETE, PRUNED
by ASHA, FAIL). The dashboard reads it; the search never waits on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidtune.scripts._args import fail

NEEDS = "pip install 'vidtune[dashboard]'"


def storage_url(results_dir: str) -> str:
    """The mirror's database of a results folder. ValueError naming the folder and the fix."""
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.core.storage import is_uri
    from vidtune.trainable.tune.optuna_mirror import DB_FILE, default_storage_url

    cfg = SearchConfig.load(results_dir)   # names a folder that is not a search
    if cfg.optuna_storage:
        return cfg.optuna_storage
    if is_uri(results_dir):
        raise ValueError(f"{results_dir} is on remote storage; copy its {DB_FILE} here and run "
                         f"optuna-dashboard sqlite:////abs/path/{DB_FILE}")
    folder = Path(results_dir).expanduser().resolve()
    if not (folder / DB_FILE).is_file():
        raise ValueError(f"{folder} has no {DB_FILE} yet: the mirror writes it at the first "
                         "trial's first epoch; wait a moment and try again")
    return default_storage_url(str(folder))


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="a folder written by `vidtune search`")
    p.add_argument("--port", type=int, default=8080, help="port on localhost (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    args = p.parse_args(argv)
    try:
        url = storage_url(args.results_dir)
        try:
            import optuna_dashboard
        except ImportError:
            raise ValueError(f"vidtune dashboard needs optuna-dashboard; install it with {NEEDS}") from None
    except ValueError as exc:
        fail(p, exc)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ (Ctrl-C to stop), study {url}",
          file=sys.stderr, flush=True)
    try:
        optuna_dashboard.run_server(url, host=args.host, port=args.port)
    except OSError as exc:   # the port is taken
        fail(p, ValueError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); "
                           "choose another with --port"), status=1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
