"""Train one configuration and print its final validation accuracy."""

from __future__ import annotations

import argparse
import json
import sys

from vidtune.scripts._args import add_data_args, data_config, fail, print_epoch
from vidtune.trainable.core import ModelConfig, TrainConfig
from vidtune.trainable.core.config import ENCODERS

_M, _T = ModelConfig(), TrainConfig()


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--encoder", choices=ENCODERS, default=_M.encoder,
                   help="per-frame encoder: the seed's conv blocks, or a torchvision backbone "
                        "(weights from --encoder-weights, else random) (default %(default)s)")
    p.add_argument("--conv-widths", default=",".join(map(str, _M.conv_widths)),
                   help="comma-separated conv block widths, for --encoder conv (default %(default)s)")
    p.add_argument("--lstm-hidden", type=int, default=_M.lstm_hidden, help="(default %(default)s)")
    p.add_argument("--lstm-layers", type=int, default=_M.lstm_layers, help="(default %(default)s)")
    p.add_argument("--dropout", type=float, default=_M.dropout, help="(default %(default)s)")
    p.add_argument("--lr", type=float, default=_T.lr, help="(default %(default)s)")
    p.add_argument("--weight-decay", type=float, default=_T.weight_decay, help="(default %(default)s)")
    p.add_argument("--batch-size", type=int, default=_T.batch_size, help="(default %(default)s)")
    p.add_argument("--epochs", type=int, default=_T.epochs, help="(default %(default)s)")
    p.add_argument("--seed", type=int, default=_T.seed, help="(default %(default)s)")
    p.add_argument("--out", default=None, help="save the trained model to this folder")
    add_data_args(p)
    args = p.parse_args(argv)
    from vidtune.trainable.best.standalone import train_model

    try:
        widths = tuple(int(w) for w in args.conv_widths.split(","))
    except ValueError:
        fail(p, ValueError(f"--conv-widths is {args.conv_widths!r}; expected e.g. 32,64,128"))
    try:
        model_cfg = ModelConfig(conv_widths=widths, lstm_hidden=args.lstm_hidden,
                                lstm_layers=args.lstm_layers, dropout=args.dropout,
                                encoder=args.encoder)
        train_cfg = TrainConfig(lr=args.lr, weight_decay=args.weight_decay,
                                batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
        metrics = train_model(model_cfg, train_cfg, data_config(args), out=args.out,
                              log=lambda line: print(line, file=sys.stderr), on_epoch=print_epoch)
    except ValueError as exc:
        fail(p, exc)
    print(f"final val_acc {metrics['val_acc']:.4f}")
    if args.out:
        print(f"model saved to {args.out}")
    print(json.dumps({"val_acc": metrics["val_acc"], "val_loss": metrics["val_loss"]}))


if __name__ == "__main__":
    main()
