"""One trial of the search as plain Python: sampled parameters in, per-epoch reports out.

No Ray here: `report(metrics, state)` is supplied by the caller (tune_adapter wires it to
ray.tune.report with a checkpoint; tests and benchmarks can pass a plain function).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from data import DataConfig, make_loaders
from search_spaces import to_hparams
from trainable.config import ModelConfig, TrainConfig, split_params
from trainable.loop import DivergedError, fit, pick_device
from trainable.model import build_model

Report = Callable[[dict[str, Any], dict[str, Any] | None], None]   # (metrics, resumable state)


@dataclass(frozen=True)
class TrialSetup:
    """Everything a trial needs besides its sampled parameters. Same for all trials."""

    data: DataConfig
    max_epochs: int
    seed: int = 0
    batch_size: int = 32
    constants: dict[str, Any] = field(default_factory=dict)   # fixed hyperparameters of the space
    cpus: float = 1.0
    gpu_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs is {self.max_epochs}, but must be >= 1")


def _hparams(params: dict[str, Any], setup: TrialSetup) -> dict[str, Any]:
    """The setup's batch size, then the space's constants, then the sampled values (last wins)."""
    return {"batch_size": setup.batch_size, **setup.constants, **to_hparams(params)}


def trial_configs(params: dict[str, Any], setup: TrialSetup, num_classes: int) -> tuple[ModelConfig, TrainConfig]:
    hp = _hparams(params, setup)
    hp.update(epochs=setup.max_epochs, seed=setup.seed, num_classes=num_classes)
    return split_params(hp)


def limit_resources(setup: TrialSetup) -> torch.device:
    """Keep a trial within its share: torch threads = its CPUs, CUDA memory = its GPU fraction.

    Ray's resources are only logical: without this a 0.25-GPU trial could take the whole card.
    """
    torch.set_num_threads(max(1, int(setup.cpus)))
    device = pick_device()
    if device.type == "cuda" and 0 < setup.gpu_fraction < 1:
        torch.cuda.set_per_process_memory_fraction(setup.gpu_fraction, device)
    return device


def run_trial(params: dict[str, Any], setup: TrialSetup, report: Report,
              resume: dict[str, Any] | None = None, device: torch.device | None = None) -> None:
    """Train one configuration for up to setup.max_epochs, reporting after every epoch.

    Each report carries epoch, train_loss, val_loss, val_acc, epoch_time_s and diverged (0/1).
    A NaN/inf loss ends the trial with one report of diverged=1 and val_acc=0 instead of
    raising, so the search goes on.
    """
    loaders = make_loaders(setup.data, batch_size=int(_hparams(params, setup)["batch_size"]), progress=False)
    model_cfg, train_cfg = trial_configs(params, setup, len(loaders.class_names))
    model = build_model(model_cfg, seed=train_cfg.seed)

    if resume is not None and resume["epoch"] >= train_cfg.epochs:
        # Finished before the driver went down, but its end was never recorded: report it again.
        report({**resume["history"][-1], "diverged": 0}, resume)
        return

    done = 0 if resume is None else int(resume["epoch"])   # epochs completed so far

    def on_epoch(metrics: dict[str, float], state_fn: Callable[[], dict[str, Any]]) -> bool:
        nonlocal done
        done = int(metrics["epoch"])
        report({**metrics, "diverged": 0}, state_fn())
        return False

    try:
        fit(model, loaders.train, loaders.val, train_cfg, model_cfg.num_classes,
            device=device, on_epoch=on_epoch, resume=resume)
    except DivergedError:
        report({"epoch": done + 1, "train_loss": math.nan, "val_loss": math.nan,
                "val_acc": 0.0, "epoch_time_s": 0.0, "diverged": 1}, None)
