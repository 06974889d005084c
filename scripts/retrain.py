"""Retrain the best trial of a search from scratch and save it as a model folder.

The best trial is the one with the best final val_acc among the trials that trained the most
epochs (see vidtune.trainable.tune.experiment.best_trial). With the default epochs and seed (the search's
max_epochs and seed) the retrained model reproduces that trial's validation accuracy.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from vidtune.scripts._args import fail, print_epoch

if TYPE_CHECKING:
    from vidtune.trainable.best.retrain import RetrainOutcome


def print_retrain(outcome: RetrainOutcome) -> None:
    m = outcome.metrics
    if outcome.train_on == "train":
        print(f"final val_acc {m['val_acc']:.4f}"
              + (f" (the trial reported {outcome.choice.best.val_acc:.4f} with the same epochs "
                 "and seed)" if outcome.reproduces else ""))
    else:
        print(f"final val_acc {m['val_acc']:.4f}: NOT a held-out number, the val clips were "
              "trained on (--train-on train+val)")
    files = "weights.pt, config.json, metrics.json" + (", model.pt2" if outcome.exported else "")
    print(f"model saved to {outcome.out} ({files})")


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="a folder written by `vidtune search`")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs to train (default: the search's max_epochs)")
    p.add_argument("--train-on", choices=("train", "train+val"), default="train",
                   help="train on the train split (default; val stays held out) or on every clip")
    p.add_argument("--seed", type=int, default=None,
                   help="initialisation and batch-order seed (default: the search's seed)")
    p.add_argument("--out", default=None, help="model folder (default RESULTS_DIR/best_model)")
    p.add_argument("--mlflow", default=None, metavar="URI",
                   help="log the model to this MLflow tracking URI (default: the search's "
                        "--mlflow, if it had one; '' for none)")
    args = p.parse_args(argv)
    from vidtune.trainable.best.retrain import retrain_best

    try:
        outcome = retrain_best(args.results_dir, epochs=args.epochs, train_on=args.train_on,
                               seed=args.seed, out=args.out,
                               log=lambda line: print(line, flush=True), on_epoch=print_epoch,
                               mlflow=args.mlflow)
    except ValueError as exc:
        fail(p, exc)
    print_retrain(outcome)


if __name__ == "__main__":
    main()
