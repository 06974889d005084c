"""Evaluate a saved model: accuracy, per-class accuracy and a confusion-matrix PNG.

Without --data the model is evaluated on the validation split of the data it was trained on.
With --data, on that folder or manifest (or 'synthetic'), using the model's clip size and,
unless given, its split settings (--val-fraction, --data-seed). --split test takes the test
clips of a manifest or split lists. --clips K judges each clip by the model's probabilities
averaged over K windows of its stored frames (needs --stored-frames > --frames in training).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vidtune.scripts._args import add_data_args, fail, running_search_note

if TYPE_CHECKING:
    from vidtune.trainable.best.predict import Evaluation


def print_evaluation(ev: Evaluation, confusion_png: str | None) -> None:
    r = ev.result
    name = {"val": "val_acc", "test": "test_acc"}.get(ev.split, "acc (all clips)")
    total = sum(map(sum, r.confusion))
    windows = f", {ev.clips} windows each" if ev.clips > 1 else ""
    print(f"{name} {r.accuracy:.4f}  loss {r.loss:.4f}  ({total} clips of {ev.data.source}{windows})")
    if not ev.held_out:
        print("note: the model was trained on these clips: not a held-out accuracy")
    width = max(map(len, ev.class_names))
    print("per-class accuracy:")
    for i, (cls, acc) in enumerate(zip(ev.class_names, r.per_class_accuracy, strict=True)):
        print(f"  {cls:<{width}}  {acc:.3f}  ({r.confusion[i][i]}/{sum(r.confusion[i])})")
    if confusion_png:
        print(f"confusion matrix: {confusion_png}")


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("model", help="a model folder saved by `vidtune train --out` or `vidtune retrain`")
    p.add_argument("--split", choices=("val", "test", "all"), default="val",
                   help="evaluate on the validation split (default), the test split of a "
                        "manifest or split lists, or every clip")
    p.add_argument("--clips", type=int, default=1, metavar="K",
                   help="windows per clip whose probabilities are averaged (multi-clip "
                        "evaluation; default %(default)s: the middle window)")
    p.add_argument("--confusion-png", default="",
                   help="where to write the confusion matrix (default MODEL/confusion.png)")
    p.add_argument("--no-png", action="store_true", help="do not write a confusion-matrix PNG")
    add_data_args(p)
    # None: take the value the model was trained with.
    p.set_defaults(data=None, frames=None, height=None, width=None, num_clips=None, noise=None,
                   data_seed=None, val_fraction=None, cache_dir=None, split_file=None,
                   stored_frames=None, augment=None, encoder_weights=None, decode_workers=None)
    args = p.parse_args(argv)
    from vidtune.trainable.best.predict import evaluate_model

    try:
        evaluation = evaluate_model(
            args.model, data=args.data, split=args.split, clips=args.clips, frames=args.frames,
            height=args.height, width=args.width, num_clips=args.num_clips, noise=args.noise,
            seed=args.data_seed, val_fraction=args.val_fraction, cache_dir=args.cache_dir,
            split_file=args.split_file, stored_frames=args.stored_frames,
            decode_workers=args.decode_workers)
    except ValueError as exc:
        fail(p, exc)
    png = None
    if not args.no_png:
        from vidtune.analysis.plots import plot_confusion

        png = args.confusion_png or str(Path(args.model) / "confusion.png")
        plot_confusion(evaluation.result.confusion, evaluation.class_names, png)
    note = running_search_note(args.model)
    if note:
        print(note, file=sys.stderr)
    print_evaluation(evaluation, png)


if __name__ == "__main__":
    main()
