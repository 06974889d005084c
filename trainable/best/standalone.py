"""Train or evaluate one configuration outside a search (what `vidtune train/evaluate` call)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidtune.data import ClipLoader, DataConfig, MultiClipLoader, make_loaders
from vidtune.data.split import given_split
from vidtune.trainable.best.artifact import (
    data_config_of,
    load_artifact,
    save_artifact,
    train_config_of,
)
from vidtune.trainable.core.config import ModelConfig, TrainConfig
from vidtune.trainable.core.encoders import weights_for
from vidtune.trainable.core.loop import EvalResult, evaluate, fit, pick_device
from vidtune.trainable.core.model import build_model, count_parameters

Log = Callable[[str], None]                       # a line for the user (the command prints it)
EpochLog = Callable[[dict[str, float], int], None]   # (an epoch's metrics, total epochs)


def train_model(model_cfg: ModelConfig, train_cfg: TrainConfig, data_cfg: DataConfig,
                out: str | Path | None = None, extra: dict[str, Any] | None = None,
                all_clips: bool = False, log: Log | None = None,
                on_epoch: EpochLog | None = None) -> dict[str, Any]:
    """Train from scratch; save an artifact folder to `out` if given. Returns final metrics.

    all_clips trains on train + val: the val metrics are then not held out (val_held_out False).
    `log` gets a line about the run, `on_epoch` each epoch's metrics (the commands print them).
    """
    data_cfg = data_cfg.resolved()
    loaders = make_loaders(data_cfg, batch_size=train_cfg.batch_size, progress=log is not None)
    train_loader = loaders.train
    if all_clips:
        both = np.union1d(loaders.train.indices, loaders.val.indices)   # never a held-out test split
        train_loader = ClipLoader(loaders.train.arrays, both, train_cfg.batch_size, shuffle=True,
                                  seed=data_cfg.seed, frames=data_cfg.frames,
                                  augment=loaders.train.augment)
    model_cfg = replace(model_cfg, num_classes=len(loaders.class_names))
    model = build_model(model_cfg, seed=train_cfg.seed,
                        encoder_weights=weights_for(data_cfg.encoder_weights, model_cfg.encoder))
    device = pick_device()
    if log is not None:
        clips = (f"all {len(train_loader.indices)} clips (train + val)" if all_clips else
                 f"{len(loaders.train.indices)} train / {len(loaders.val.indices)} val clips")
        log(f"training {count_parameters(model):,} parameters on {device} for {train_cfg.epochs} "
            f"epochs ({clips})")

    def report(metrics: dict[str, float], _state_fn: Callable[[], dict[str, Any]]) -> None:
        if on_epoch is not None:
            on_epoch(metrics, train_cfg.epochs)

    result = fit(model, train_loader, loaders.val, train_cfg, model_cfg.num_classes, device, report)
    ev = evaluate(model, loaders.val, device, model_cfg.num_classes)
    metrics = {"val_acc": ev.accuracy, "val_loss": ev.loss, "epochs": len(result.history),
               **({"val_held_out": False} if all_clips else {}),
               "per_class_accuracy": dict(zip(loaders.class_names, ev.per_class_accuracy, strict=True)),
               "history": result.history}
    if out is not None:
        save_artifact(out, model.cpu(), train_cfg, data_cfg, loaders.class_names, metrics, extra)
    return metrics


SPLITS = ("val", "test", "all")


def evaluate_artifact(folder: str | Path, data_cfg: DataConfig | None = None,
                      split: str = "val", clips: int = 1) -> tuple[EvalResult, tuple[str, ...]]:
    """Evaluate a saved model on data_cfg (default: the data it was trained on): its val split,
    its test split (a manifest's or split lists' test clips) or all clips. clips > 1: each clip
    is judged by the model's probabilities averaged over that many windows of its stored frames
    (multi-clip evaluation)."""
    model, config = load_artifact(folder)
    data_cfg = (data_cfg or data_config_of(config)).resolved()
    trained = data_config_of(config)
    if (data_cfg.frames, data_cfg.height, data_cfg.width) != (trained.frames, trained.height, trained.width):
        data_cfg = replace(data_cfg, frames=trained.frames, height=trained.height, width=trained.width)
    data_cfg = replace(data_cfg, augment=False)
    if split not in SPLITS:
        raise ValueError(f"split is {split!r}; use one of {', '.join(SPLITS)}")
    loaders = make_loaders(data_cfg, batch_size=train_config_of(config).batch_size, progress=True)
    class_names = tuple(config["class_names"])
    if loaders.class_names != class_names:
        raise ValueError(f"the data's classes {list(loaders.class_names)} differ from the model's "
                         f"{list(class_names)}")
    arrays = loaders.val.arrays
    indices = loaders.val.indices
    if split == "all":
        indices = np.arange(len(arrays))
    elif split == "test":
        indices = given_split(arrays.splits)[2] if arrays.splits is not None else np.array([], int)
        if not len(indices):
            raise ValueError(f"{data_cfg.source} has no test clips; give them split test in the "
                             "manifest or a test list with --split-file, or evaluate --split val")
    loader: ClipLoader = ClipLoader(arrays, indices, loaders.val.batch_size, shuffle=False,
                                    frames=data_cfg.frames)
    if clips > 1:
        loader = MultiClipLoader(arrays, indices, loaders.val.batch_size, data_cfg.frames, clips)
    device = pick_device()
    model.to(device)
    with torch.no_grad():
        return evaluate(model, loader, device, len(class_names)), class_names
