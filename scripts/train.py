"""Train one configuration and print its final validation accuracy."""

from __future__ import annotations

import argparse
import json
import sys

from vidtune.scripts._args import (
    add_config_args,
    add_data_args,
    config_from_args,
    data_config,
    fail,
    print_epoch,
)
from vidtune.trainable.core import ModelConfig, TrainConfig


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_config_args(p, ModelConfig, "model")
    add_config_args(p, TrainConfig, "training")
    p.add_argument("--out", default=None, help="save the trained model to this folder")
    add_data_args(p)
    args = p.parse_args(argv)
    from vidtune.trainable.best.standalone import train_model

    try:
        metrics = train_model(config_from_args(ModelConfig, args), config_from_args(TrainConfig, args),
                              data_config(args), out=args.out,
                              log=lambda line: print(line, file=sys.stderr), on_epoch=print_epoch)
    except ValueError as exc:
        fail(p, exc)
    print(f"final val_acc {metrics['val_acc']:.4f}")
    if args.out:
        print(f"model saved to {args.out}")
    print(json.dumps({"val_acc": metrics["val_acc"], "val_loss": metrics["val_loss"]}))


if __name__ == "__main__":
    main()
