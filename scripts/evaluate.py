"""Evaluate a saved model: accuracy, per-class accuracy and a confusion-matrix PNG.

Without --data the model is evaluated on the validation split of the data it was trained on.
With --data, on that folder (or 'synthetic'), using the model's clip size and, unless given,
its split settings (--val-fraction, --data-seed).
"""

from __future__ import annotations

import argparse

from scripts._args import add_data_args, fail


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("model", help="a model folder saved by `vidtune train --out` or `vidtune retrain`")
    p.add_argument("--split", choices=("val", "all"), default="val",
                   help="evaluate on the validation split (default) or on every clip")
    p.add_argument("--confusion-png", default="",
                   help="where to write the confusion matrix (default MODEL/confusion.png)")
    p.add_argument("--no-png", action="store_true", help="do not write a confusion-matrix PNG")
    add_data_args(p)
    # None: take the value the model was trained with.
    p.set_defaults(data=None, frames=None, height=None, width=None, num_clips=None, noise=None,
                   data_seed=None, val_fraction=None, cache_dir=None)
    args = p.parse_args(argv)
    from trainable.predict import evaluate_model, print_evaluation

    try:
        evaluation = evaluate_model(
            args.model, data=args.data, split=args.split,
            confusion_png=None if args.no_png else args.confusion_png,
            frames=args.frames, height=args.height, width=args.width, num_clips=args.num_clips,
            noise=args.noise, seed=args.data_seed, val_fraction=args.val_fraction,
            cache_dir=args.cache_dir)
    except ValueError as exc:
        fail(p, exc)
    print_evaluation(evaluation)


if __name__ == "__main__":
    main()
