"""Argument groups shared by several commands."""

from __future__ import annotations

import argparse
import sys

from vidtune.data import SYNTHETIC, DataConfig

_D = DataConfig()


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", default=SYNTHETIC, metavar="DIR",
                   help="'synthetic' (default) or a folder root/<class>/<video files>")
    g.add_argument("--frames", type=int, default=_D.frames, help="frames per clip T (default %(default)s)")
    g.add_argument("--height", type=int, default=_D.height, help="frame height (default %(default)s)")
    g.add_argument("--width", type=int, default=_D.width, help="frame width (default %(default)s)")
    g.add_argument("--num-clips", type=int, default=_D.num_clips,
                   help="synthetic: clips in train+val (default %(default)s)")
    g.add_argument("--noise", type=float, default=_D.noise,
                   help="synthetic: difficulty in [0, 1] (default %(default)s)")
    g.add_argument("--data-seed", type=int, default=_D.seed,
                   help="synthetic content and train/val split (default %(default)s)")
    g.add_argument("--val-fraction", type=float, default=_D.val_fraction,
                   help="share of clips held out for validation (default %(default)s)")
    g.add_argument("--cache-dir", default=None,
                   help="where decoded/generated clips are cached (default $VIDTUNE_CACHE or ~/.cache/vidtune)")


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(source=args.data, frames=args.frames, height=args.height, width=args.width,
                      num_clips=args.num_clips, noise=args.noise, seed=args.data_seed,
                      val_fraction=args.val_fraction, cache_dir=args.cache_dir)


def print_epoch(metrics: dict[str, float], total: int) -> None:
    """One line per epoch on stderr, for `vidtune train` and `vidtune retrain`."""
    print(f"epoch {int(metrics['epoch']):>3}/{total}  train_loss {metrics['train_loss']:.4f}  "
          f"val_loss {metrics['val_loss']:.4f}  val_acc {metrics['val_acc']:.4f}  "
          f"({metrics['epoch_time_s']:.1f}s)", file=sys.stderr, flush=True)


def fail(parser: argparse.ArgumentParser, exc: Exception) -> None:
    """Print a clean one-line error (no traceback) and exit 2, as argparse does."""
    parser.exit(2, f"{parser.prog}: error: {exc}\n")
