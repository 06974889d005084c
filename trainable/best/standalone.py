"""Train or evaluate one configuration outside a search (what `vidtune train/evaluate` call)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidtune.data import ClipLoader, DataConfig, make_loaders
from vidtune.trainable.best.artifact import (
    data_config_of,
    load_artifact,
    save_artifact,
    train_config_of,
)
from vidtune.trainable.core.config import ModelConfig, TrainConfig
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
        arrays = loaders.train.arrays
        train_loader = ClipLoader(arrays, np.arange(len(arrays)), train_cfg.batch_size,
                                  shuffle=True, seed=data_cfg.seed)
    model_cfg = replace(model_cfg, num_classes=len(loaders.class_names))
    model = build_model(model_cfg, seed=train_cfg.seed)
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


def evaluate_artifact(folder: str | Path, data_cfg: DataConfig | None = None,
                      split: str = "val") -> tuple[EvalResult, tuple[str, ...]]:
    """Evaluate a saved model on data_cfg (default: the data it was trained on), val or all clips."""
    model, config = load_artifact(folder)
    data_cfg = (data_cfg or data_config_of(config)).resolved()
    trained = data_config_of(config)
    if (data_cfg.frames, data_cfg.height, data_cfg.width) != (trained.frames, trained.height, trained.width):
        data_cfg = replace(data_cfg, frames=trained.frames, height=trained.height, width=trained.width)
    loaders = make_loaders(data_cfg, batch_size=train_config_of(config).batch_size, progress=True)
    class_names = tuple(config["class_names"])
    if loaders.class_names != class_names:
        raise ValueError(f"the data's classes {list(loaders.class_names)} differ from the model's "
                         f"{list(class_names)}")
    if split not in ("val", "all"):
        raise ValueError(f"split is {split!r}; use 'val' or 'all'")
    loader = loaders.val
    if split == "all":
        loader = ClipLoader(loaders.val.arrays, np.arange(len(loaders.val.arrays)),
                            loaders.val.batch_size, shuffle=False)
    device = pick_device()
    model.to(device)
    with torch.no_grad():
        return evaluate(model, loader, device, len(class_names)), class_names
