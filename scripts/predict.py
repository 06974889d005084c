"""Classify video files with a saved model: the top classes and their probabilities per video.

Each video is decoded exactly as the training data was (frames sampled uniformly over the
whole video, resized to the model's frame size). Unreadable videos are reported by name and
skipped; the exit status is 1 if any could not be read.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from vidtune.scripts._args import fail, running_search_note

if TYPE_CHECKING:
    from vidtune.trainable.best.predict import VideoPrediction


def print_predictions(predictions: list[VideoPrediction]) -> int:
    """Each video's top classes on stdout, unreadable ones on stderr; returns how many failed."""
    failed = 0
    for pred in predictions:
        if pred.error is not None:
            failed += 1
            print(f"error: cannot read {pred.path}: {pred.error}", file=sys.stderr, flush=True)
            continue
        width = max(len(name) for name, _ in pred.top)
        print(pred.path)
        for rank, (name, prob) in enumerate(pred.top, start=1):
            print(f"  {rank}. {name:<{width}}  {prob:.3f}")
    if failed:
        print(f"{failed} of {len(predictions)} videos could not be read", file=sys.stderr)
    return failed


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("model", help="a model folder saved by `vidtune train --out` or `vidtune retrain`")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to classify")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per video (default %(default)s)")
    args = p.parse_args(argv)
    from vidtune.trainable.best.predict import predict_videos

    try:
        predictions = predict_videos(args.model, args.videos, top_k=args.top_k)
    except ValueError as exc:
        fail(p, exc)
    note = running_search_note(args.model)
    if note:
        print(note, file=sys.stderr)
    if print_predictions(predictions):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
