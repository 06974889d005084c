"""The pure-PyTorch core: configs, the VideoModel, the loop, checkpoints, one trial. No Ray.

- config.py         ModelConfig, TrainConfig (frozen, validated)
- search_config.py  SearchConfig: everything `vidtune search` takes, validated before Ray
- storage.py        where a search's files live: local folders and storage URIs
- config_file.py    search files (TOML, or an earlier vidtune.json) read strictly, with lines
- space_check.py    a search space checked against ModelConfig/TrainConfig; its first trial
- model.py          VideoModel: per-frame CNN -> LSTM -> linear head
- encoders.py       optional torchvision encoders (resnet18, mobilenet_v3_small), local weights
- loop.py           fit / evaluate, seeded and resumable to the exact batch order
- precision.py      what a trial computes in: device class + CPU capability -> bf16 or fp32
- checkpoint.py     a trial's state on disk, with fallback to an older readable one
- trial.py          one trial as plain Python: parameters in, per-epoch reports out
- results.py        TrialStatus, classify, Best and the two best-trial rules
- failures.py       which trial errors a retry cannot fix; errors as one line, counted
- preflight.py      the driver's checks before Ray starts: folders, clip size, data
- lease.py          one live driver per search: driver.lease, its stale rules, heartbeat
- packing.py        --gpus-per-trial auto: as many trials per GPU as fit, measured
- memory_cap.py     a packed trial's CUDA memory cap: its share less its CUDA context
- rung_scores.py    what a rung ranks a trial by (last, best, mean2, fit), judged offline
- tracking.py       MLflow (optional): the tracking URI's check, the search's and trials' runs
"""

from vidtune.trainable.core.config import ModelConfig, TrainConfig, split_params, to_dict
from vidtune.trainable.core.loop import (
    DivergedError,
    EvalResult,
    FitResult,
    evaluate,
    fit,
    pick_device,
)
from vidtune.trainable.core.model import VideoModel, build_model, count_parameters
from vidtune.trainable.core.results import Best, TrialStatus, best_reported, best_trial, classify
from vidtune.trainable.core.search_config import SearchConfig

__all__ = [
    "Best",
    "DivergedError",
    "EvalResult",
    "FitResult",
    "ModelConfig",
    "SearchConfig",
    "TrainConfig",
    "TrialStatus",
    "VideoModel",
    "best_reported",
    "best_trial",
    "build_model",
    "classify",
    "count_parameters",
    "evaluate",
    "fit",
    "pick_device",
    "split_params",
    "to_dict",
]
