"""Frozen, validated configs for the model and the training loop."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vidtune.trainable.core.precision import PRECISIONS, check_precision

# The per-frame encoders: the seed's conv blocks, or a torchvision backbone (encoders.py).
ENCODERS = ("conv", "resnet18", "mobilenet_v3_small")


# Sampled like hyperparameters, but settings of a trial's data (DataConfig fields): applied by
# core.trial.trial_data, and never passed to ModelConfig/TrainConfig.
DATA_PARAMS = ("augment",)


def parse_widths(text: str) -> tuple[int, ...]:
    """'32,64,128' -> (32, 64, 128), for --conv-widths. ValueError naming the text."""
    try:
        return tuple(int(w) for w in str(text).split(","))
    except ValueError:
        raise ValueError(f"conv widths {text!r} are not understood; write e.g. 32,64,128") from None


# Fields with "help" in their metadata are `vidtune train` flags (scripts/_args.py).
@dataclass(frozen=True)
class ModelConfig:
    conv_widths: tuple[int, ...] = field(default=(32, 64, 128), metadata={  # one block per width
        "help": "comma-separated widths of the Conv-BN-ReLU-MaxPool blocks (--encoder conv)",
        "type": parse_widths,
        "metavar": "W,W,..."})
    lstm_hidden: int = field(default=256, metadata={"help": "LSTM hidden size"})
    lstm_layers: int = field(default=1, metadata={"help": "LSTM layers"})
    dropout: float = field(default=0.0, metadata={     # between LSTM layers and before the head
        "help": "dropout between LSTM layers and before the head"})
    num_classes: int = 10
    in_channels: int = 3            # RGB
    spatial_pool: int = 4           # CNN output pooled to spatial_pool^2 cells: keeps coarse position
    encoder: str = field(default="conv", metadata={   # conv_widths apply to "conv" only
        "help": "per-frame encoder: the seed's conv blocks, or a torchvision backbone (weights "
                "from --encoder-weights, else random)", "choices": ENCODERS})

    def __post_init__(self) -> None:
        widths = tuple(self.conv_widths)
        object.__setattr__(self, "conv_widths", widths)
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"conv_widths is {self.conv_widths!r}, but must be positive ints, e.g. (32, 64, 128)")
        for name in ("lstm_hidden", "lstm_layers", "in_channels", "spatial_pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}, but must be >= 1")
        if self.num_classes < 2:
            raise ValueError(f"num_classes is {self.num_classes}, but must be >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is {self.dropout}, but must lie in [0, 1)")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder is {self.encoder!r}; known: {', '.join(ENCODERS)}")


@dataclass(frozen=True)
class TrainConfig:
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    batch_size: int = field(default=32, metadata={"help": "clips per batch"})
    epochs: int = field(default=10, metadata={"help": "epochs to train"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm (0: no clipping)"})
    seed: int = field(default=0, metadata={"help": "initial weights and batch order"})
    precision: str = field(default="auto", metadata={   # core/precision.py: the one rule
        "help": "what convolutions and linear layers compute in: bf16 (autocast), fp32, or "
                "auto: bf16 on a GPU with bf16 or a CPU with AMX/AVX512-BF16, else fp32",
        "choices": PRECISIONS})
    channels_last: bool = field(default=True, metadata={   # faster in fp32 on the CPU, slower in bf16
        "help": "the per-frame CNN's weights in channels_last layout on the CPU in fp32 "
                "(--no-channels-last: the contiguous layout, e.g. to reproduce older runs)"})

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr is {self.lr}, but must be a positive number, e.g. 1e-3")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay is {self.weight_decay}, but must be >= 0")
        if self.batch_size < 1:
            raise ValueError(f"batch_size is {self.batch_size}, but must be >= 1")
        if self.epochs < 1:
            raise ValueError(f"epochs is {self.epochs}, but must be >= 1")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip is {self.grad_clip}, but must be >= 0 (0 disables clipping)")
        check_precision(self.precision)


def split_params(params: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """A flat dict of hyperparameters (as a search space samples them) -> (ModelConfig, TrainConfig).

    Unknown keys are an error, so a typo in a search space cannot be silently ignored.
    """
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(params) - model_keys - train_keys
    if unknown:
        raise ValueError(
            f"unknown hyperparameters {sorted(unknown)}; known: {sorted(model_keys | train_keys)}"
        )
    model = {k: v for k, v in params.items() if k in model_keys}
    if "conv_widths" in model:
        model["conv_widths"] = tuple(int(w) for w in model["conv_widths"])
    return ModelConfig(**model), TrainConfig(**{k: v for k, v in params.items() if k in train_keys})


def to_dict(cfg: ModelConfig | TrainConfig) -> dict[str, Any]:
    """JSON-friendly dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
