"""A trained model on disk: a folder any later command (evaluate, predict) can load.

    weights.pt     state_dict, loadable with torch.load(weights_only=True)
    config.json    model, train and data configs + class names (preprocessing included)
    metrics.json   final metrics
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from data import DataConfig
from trainable.config import ModelConfig, TrainConfig, to_dict
from trainable.model import VideoModel

WEIGHTS, CONFIG, METRICS = "weights.pt", "config.json", "metrics.json"


def save_artifact(folder: str | Path, model: VideoModel, train_cfg: TrainConfig, data_cfg: DataConfig,
                  class_names: tuple[str, ...], metrics: dict[str, Any],
                  extra: dict[str, Any] | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS)
    config = {
        "model": to_dict(model.cfg),
        "train": to_dict(train_cfg),
        "data": asdict(data_cfg),
        "class_names": list(class_names),
        "preprocessing": {"frames": data_cfg.frames, "height": data_cfg.height,
                          "width": data_cfg.width, "layout": "B,T,C,H,W",
                          "scale": "uint8/255", "mean": 0.5, "std": 0.5,
                          "temporal_sampling": "uniform"},
        **(extra or {}),
    }
    (folder / CONFIG).write_text(json.dumps(config, indent=2))
    (folder / METRICS).write_text(json.dumps(metrics, indent=2))
    return folder


def load_artifact(folder: str | Path) -> tuple[VideoModel, dict[str, Any]]:
    """(model in eval mode on CPU, config dict). Clear errors for a missing or partial folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model folder {str(folder)!r} does not exist; train one with "
                         "`vidtune train --out DIR` or `vidtune retrain RESULTS_DIR`")
    missing = [n for n in (WEIGHTS, CONFIG) if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"{folder} is not a vidtune model folder: missing {', '.join(missing)}")
    config = json.loads((folder / CONFIG).read_text())
    model_cfg = ModelConfig(**{**config["model"], "conv_widths": tuple(config["model"]["conv_widths"])})
    model = VideoModel(model_cfg)
    model.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval(), config


def train_config_of(config: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**config["train"])


def data_config_of(config: dict[str, Any]) -> DataConfig:
    return DataConfig(**config["data"])
