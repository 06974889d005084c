"""`vidtune COMMAND ...`: dispatch to the scripts, each of which has its own --help."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "search": ("vidtune.scripts.search", "run a hyperparameter search (Optuna TPE + Ray Tune + ASHA)"),
    "resume": ("vidtune.scripts.resume", "continue an interrupted search"),
    "spaces": ("vidtune.scripts.spaces", "list the named search spaces"),
    "train": ("vidtune.scripts.train", "train one configuration and save the model"),
    "evaluate": ("vidtune.scripts.evaluate", "evaluate a saved model on a data set"),
    "retrain": ("vidtune.scripts.retrain", "retrain the best configuration of a search and export it"),
    "predict": ("vidtune.scripts.predict", "classify video files with a saved model"),
    "analyze": ("vidtune.scripts.analyze", "tables and plots of a search's trials"),
    "dashboard": ("vidtune.scripts.dashboard", "watch a search live in optuna-dashboard, on localhost"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: vidtune COMMAND [--help] ...\n\ncommands:\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        sys.stderr.write(f"vidtune: unknown command {command!r}\n\n" + usage())
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[command][0])
    module.main(rest, prog=f"vidtune {command}")


if __name__ == "__main__":
    main()
