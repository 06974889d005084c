"""The model, its configs and the pure-PyTorch loop; Ray lives only in tune_adapter/search."""

from trainable.config import ModelConfig, TrainConfig, split_params, to_dict
from trainable.loop import DivergedError, EvalResult, FitResult, evaluate, fit, pick_device
from trainable.model import VideoModel, build_model, count_parameters

__all__ = [
    "DivergedError",
    "EvalResult",
    "FitResult",
    "ModelConfig",
    "TrainConfig",
    "VideoModel",
    "build_model",
    "count_parameters",
    "evaluate",
    "fit",
    "pick_device",
    "split_params",
    "to_dict",
]
