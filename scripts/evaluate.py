"""Evaluate a saved model: accuracy, per-class accuracy and (optionally) a confusion matrix PNG."""

from __future__ import annotations

import argparse

from scripts._args import add_data_args, data_config, fail


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("model", help="a model folder saved by `vidtune train --out` or `vidtune retrain`")
    p.add_argument("--split", choices=("val", "all"), default="val",
                   help="evaluate on the validation split (default) or on every clip")
    p.add_argument("--confusion-png", default=None, help="write the confusion matrix to this PNG")
    add_data_args(p)
    p.set_defaults(data=None)
    args = p.parse_args(argv)
    from trainable.artifact import data_config_of, load_artifact
    from trainable.standalone import evaluate_artifact

    try:
        data_cfg = None
        if args.data is not None:
            _, config = load_artifact(args.model)
            trained = data_config_of(config)
            args.frames, args.height, args.width = trained.frames, trained.height, trained.width
            data_cfg = data_config(args)
        result, class_names = evaluate_artifact(args.model, data_cfg, split=args.split)
    except ValueError as exc:
        fail(p, exc)
    print(f"val_acc {result.accuracy:.4f}  val_loss {result.loss:.4f}")
    width = max(map(len, class_names))
    for name, acc in zip(class_names, result.per_class_accuracy, strict=True):
        print(f"  {name:<{width}}  {acc:.3f}")
    if args.confusion_png:
        from analysis.plots import plot_confusion

        plot_confusion(result.confusion, class_names, args.confusion_png)
        print(f"confusion matrix: {args.confusion_png}")


if __name__ == "__main__":
    main()
