"""A trained model on disk: a folder any later command (evaluate, predict) can load.

    weights.pt     state_dict, loadable with torch.load(weights_only=True)
    config.json    model, train and data configs + class names (preprocessing included)
    metrics.json   final metrics
    model.pt2      optional: the model as a torch.export program (batch size dynamic), runnable
                   without this package: torch.export.load(path).module()(clips)

The program is traced on the CPU, and torch.export writes the device of every tensor made
inside forward into the graph: nn.LSTM's zero initial state says device=cpu. .to("cuda")
moves the weights but not those, so on a GPU the program is first rewritten with
torch.export.passes.move_to_device_pass (load_exported(folder, "cuda") does it):

    program = torch.export.passes.move_to_device_pass(torch.export.load(path), "cuda")
    logits = program.module()(clips.cuda())
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vidtune.data import DataConfig
from vidtune.trainable.core.config import ModelConfig, TrainConfig, to_dict
from vidtune.trainable.core.model import VideoModel

WEIGHTS, CONFIG, METRICS = "weights.pt", "config.json", "metrics.json"
EXPORTED = "model.pt2"
MAX_BATCH = 4096   # upper bound of the exported program's dynamic batch dimension


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
                          "temporal_sampling": "uniform in time",
                          "stored_frames": data_cfg.stored, "window": "middle"},
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
    try:
        config = json.loads((folder / CONFIG).read_text())
        model_cfg = ModelConfig(**{**config["model"], "conv_widths": tuple(config["model"]["conv_widths"])})
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{folder}/{CONFIG} is not a readable model config ({type(exc).__name__}: "
                         f"{exc}); save the model again with `vidtune train --out` or "
                         "`vidtune retrain`") from None
    model = VideoModel(model_cfg)
    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several kinds for a damaged file
        raise ValueError(f"{folder}/{WEIGHTS} is not a readable weights file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); save the model again "
                         "with `vidtune train --out` or `vidtune retrain`") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        # "Error(s) in loading state_dict for VideoModel:\n\tsize mismatch for head.weight: ..."
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        raise ValueError(f"{folder}/{WEIGHTS} does not match {CONFIG} ({len(details)} problems, "
                         f"first: {details[0] if details else exc}); the two files come from "
                         "different models: copy both from one model folder, or save the model "
                         "again with `vidtune retrain`") from None
    return model.eval(), config


def train_config_of(config: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**config["train"])


def data_config_of(config: dict[str, Any]) -> DataConfig:
    return DataConfig(**config["data"])


def export_program(model: VideoModel, frames: int, height: int, width: int,
                   atol: float = 1e-4, device: str | torch.device = "cpu") -> torch.export.ExportedProgram:
    """The eval-mode model as a torch.export program with a dynamic batch size, traced on
    `device` (the CPU by default: model folders are portable) and run there.

    Checked before it is returned: on a random batch of 2 clips (1, T, C, H, W each) the
    program's logits must match the eager model's within atol, else ValueError.
    """
    model = model.eval().to(device)
    example = torch.randn(2, frames, model.cfg.in_channels, height, width, device=device)   # (B, T, C, H, W)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings():
        # nn.LSTM re-assigns its _flat_weights while tracing; harmless for inference.
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        program = torch.export.export(model, (example,), dynamic_shapes={"clips": {0: batch}})
    with torch.no_grad():
        want, got = model(example), program.module()(example)   # (B, num_classes)
    if not torch.allclose(want, got, atol=atol):
        raise ValueError(f"the exported program's logits differ from the model's by "
                         f"{(want - got).abs().max().item():.2e} (> {atol})")
    return program


def save_exported(folder: str | Path, model: VideoModel, data_cfg: DataConfig) -> Path:
    """Export `model` for clips of data_cfg's size into folder/model.pt2; returns the path."""
    program = export_program(model, data_cfg.frames, data_cfg.height, data_cfg.width)
    path = Path(folder) / EXPORTED
    torch.export.save(program, path)
    return path


def load_exported(folder: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The exported program of a model folder as a callable module on `device`:
    (B, T, C, H, W) -> logits. Off the CPU, the devices written into the graph are moved too
    (module docstring)."""
    path = Path(folder) / EXPORTED
    if not path.is_file():
        raise ValueError(f"{folder} has no exported program ({EXPORTED}); "
                         "`vidtune retrain` writes one")
    program = torch.export.load(path)
    if torch.device(device) != torch.device("cpu"):
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, torch.device(device))
    return program.module()
