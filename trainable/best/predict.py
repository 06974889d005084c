"""A saved model applied to data: evaluate it on a data set, or classify video files.

Video files go through exactly the training preprocessing: data.decode.decode_video (the
stored frames sampled uniformly in time, resized to the model's height x width), the middle
window of T of them as validation takes it (data.augment), then data.loaders.to_float.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidtune.data import DataConfig, to_float
from vidtune.data.augment import view_batch
from vidtune.data.decode import VideoDecodeError, decode_video
from vidtune.trainable.best.artifact import data_config_of, load_artifact
from vidtune.trainable.best.standalone import evaluate_artifact
from vidtune.trainable.core.loop import EvalResult


@dataclass(frozen=True)
class VideoPrediction:
    """Top classes of one video, or why it could not be read."""

    path: str
    top: tuple[tuple[str, float], ...] = ()   # (class name, probability), most likely first
    error: str | None = None


def predict_videos(folder: str | Path, paths: list[str | Path], top_k: int = 3,
                   device: str | torch.device = "cpu") -> list[VideoPrediction]:
    """Classify each video file with the model in `folder` on `device` (the CPU by default).
    An unreadable file gives a VideoPrediction with `error` set; the others are still
    predicted."""
    if top_k < 1:
        raise ValueError(f"top_k is {top_k}, but must be >= 1")
    model, config = load_artifact(folder)
    model.to(device)
    data_cfg = data_config_of(config)
    class_names = tuple(config["class_names"])
    k = min(top_k, len(class_names))
    out = []
    for path in paths:
        try:
            stored = decode_video(path, data_cfg.stored, data_cfg.height, data_cfg.width)  # (S, H, W, 3)
        except VideoDecodeError as exc:
            out.append(VideoPrediction(str(path), error=exc.reason))
            continue
        clip = view_batch(stored[None], np.zeros(1), data_cfg.frames, None, 0, 0)   # (1, T, H, W, 3)
        with torch.no_grad():
            clips = to_float(torch.from_numpy(np.ascontiguousarray(clip)).to(device))   # (1, T, 3, H, W)
            logits = model(clips)                                      # (1, num_classes)
        probs = logits.softmax(-1)[0].cpu()                            # (num_classes,)
        values, indices = probs.topk(k)
        out.append(VideoPrediction(str(path), tuple(
            (class_names[i], float(p)) for p, i in zip(values.tolist(), indices.tolist(), strict=True))))
    return out


@dataclass(frozen=True)
class Evaluation:
    result: EvalResult
    class_names: tuple[str, ...]
    split: str
    data: DataConfig
    held_out: bool               # False when the model was trained on these very clips
    clips: int = 1               # windows per clip whose probabilities were averaged


def evaluate_model(folder: str | Path, data: str | None = None, split: str = "val",
                   clips: int = 1, **data_overrides: Any) -> Evaluation:
    """Evaluate the model in `folder` on its own data config, or on `data` (a folder, manifest
    or 'synthetic') with the model's clip size and, unless overridden, its split settings (its
    split lists only for its own data). clips > 1: multi-clip evaluation (evaluate_artifact).
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
    if data is not None:
        overrides["source"] = data
        overrides.setdefault("split_file", "")   # the model's lists name its own data's files
    data_cfg = replace(trained, **overrides)
    result, class_names = evaluate_artifact(folder, data_cfg, split=split, clips=clips)
    same_data = replace(data_cfg.resolved(), cache_dir=None) == replace(trained.resolved(), cache_dir=None)
    held_out = not (same_data and (split == "all" or (split == "val" and
                                                      config.get("train_on") == "train+val")))
    return Evaluation(result, class_names, split, data_cfg, held_out, clips)
