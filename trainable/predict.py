"""A saved model applied to data: evaluate it on a data set, or classify video files.

Video files go through exactly the training preprocessing: data.video_folder.decode_video
(frames uniformly sampled, resized to the model's height x width) then data.loaders.to_float.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TextIO

import torch

from data import DataConfig, to_float
from data.video_folder import VideoDecodeError, decode_video
from trainable.artifact import data_config_of, load_artifact
from trainable.loop import EvalResult
from trainable.standalone import evaluate_artifact


@dataclass(frozen=True)
class VideoPrediction:
    """Top classes of one video, or why it could not be read."""

    path: str
    top: tuple[tuple[str, float], ...] = ()   # (class name, probability), most likely first
    error: str | None = None


def predict_videos(folder: str | Path, paths: list[str | Path], top_k: int = 3) -> list[VideoPrediction]:
    """Classify each video file with the model in `folder` (on CPU). An unreadable file gives
    a VideoPrediction with `error` set; the others are still predicted."""
    if top_k < 1:
        raise ValueError(f"top_k is {top_k}, but must be >= 1")
    model, config = load_artifact(folder)
    data_cfg = data_config_of(config)
    class_names = tuple(config["class_names"])
    k = min(top_k, len(class_names))
    out = []
    for path in paths:
        try:
            clip = decode_video(path, data_cfg.frames, data_cfg.height, data_cfg.width)  # (T, H, W, 3)
        except VideoDecodeError as exc:
            out.append(VideoPrediction(str(path), error=exc.reason))
            continue
        with torch.no_grad():
            logits = model(to_float(torch.from_numpy(clip)[None]))   # (1, num_classes)
        probs = logits.softmax(-1)[0]                                # (num_classes,)
        values, indices = probs.topk(k)
        out.append(VideoPrediction(str(path), tuple(
            (class_names[i], float(p)) for p, i in zip(values.tolist(), indices.tolist(), strict=True))))
    return out


def print_predictions(predictions: list[VideoPrediction], file: TextIO | None = None,
                      err: TextIO | None = None) -> int:
    """Print each video's top classes (errors to `err`); returns the number of failed videos."""
    file, err = file or sys.stdout, err or sys.stderr
    failed = 0
    for pred in predictions:
        if pred.error is not None:
            failed += 1
            print(f"error: cannot read {pred.path}: {pred.error}", file=err, flush=True)
            continue
        width = max(len(name) for name, _ in pred.top)
        print(pred.path, file=file)
        for rank, (name, prob) in enumerate(pred.top, start=1):
            print(f"  {rank}. {name:<{width}}  {prob:.3f}", file=file)
    if failed:
        print(f"{failed} of {len(predictions)} videos could not be read", file=err)
    return failed


@dataclass(frozen=True)
class Evaluation:
    result: EvalResult
    class_names: tuple[str, ...]
    split: str
    data: DataConfig
    held_out: bool               # False when the model was trained on these very clips
    confusion_png: str | None


def evaluate_model(folder: str | Path, data: str | None = None, split: str = "val",
                   confusion_png: str | Path | None = "", **data_overrides: Any) -> Evaluation:
    """Evaluate the model in `folder` on its own data config, or on `data` (a folder or
    'synthetic') with the model's clip size and, unless overridden, its split settings.

    confusion_png: "" (default) writes folder/confusion.png, None writes none.
    """
    _, config = load_artifact(folder)
    trained = data_config_of(config)
    overrides = {k: v for k, v in data_overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in fields(DataConfig)}
    if unknown:
        raise ValueError(f"unknown data settings {sorted(unknown)}")
    for name in ("frames", "height", "width"):
        if name in overrides and overrides[name] != getattr(trained, name):
            raise ValueError(f"the model takes clips of {trained.frames}x{trained.height}x"
                             f"{trained.width} (frames x height x width); {name} "
                             f"{overrides[name]} does not fit")
    data_cfg = replace(trained, **overrides, **({"source": data} if data is not None else {}))
    result, class_names = evaluate_artifact(folder, data_cfg, split=split)
    same_data = replace(data_cfg.resolved(), cache_dir=None) == replace(trained.resolved(), cache_dir=None)
    held_out = not (same_data and (split == "all" or config.get("train_on") == "train+val"))
    png = None
    if confusion_png is not None:
        png = str(Path(folder) / "confusion.png") if confusion_png == "" else str(confusion_png)
        from analysis.plots import plot_confusion

        plot_confusion(result.confusion, class_names, png)
    return Evaluation(result, class_names, split, data_cfg, held_out, png)


def print_evaluation(ev: Evaluation, file: TextIO | None = None) -> None:
    file = file or sys.stdout
    r = ev.result
    name = "val_acc" if ev.split == "val" else "acc (all clips)"
    total = sum(map(sum, r.confusion))
    print(f"{name} {r.accuracy:.4f}  loss {r.loss:.4f}  ({total} clips of {ev.data.source})", file=file)
    if not ev.held_out:
        print("note: the model was trained on these clips: not a held-out accuracy", file=file)
    width = max(map(len, ev.class_names))
    print("per-class accuracy:", file=file)
    for i, (cls, acc) in enumerate(zip(ev.class_names, r.per_class_accuracy, strict=True)):
        print(f"  {cls:<{width}}  {acc:.3f}  ({r.confusion[i][i]}/{sum(r.confusion[i])})", file=file)
    if ev.confusion_png:
        print(f"confusion matrix: {ev.confusion_png}", file=file)
