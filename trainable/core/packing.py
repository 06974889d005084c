"""`--gpus-per-trial auto`: as many trials per GPU as fit in its memory, measured (no Ray here).

Before Ray starts, a probe trains two steps (the second with the optimizer's state allocated)
of the largest configuration the space can sample: every parameter at its largest value, at
the search's batch size and clip size, bf16 autocast and cudnn.benchmark as in a trial. It
runs on this machine's GPU in a child process, so that its CUDA context (hundreds of MiB)
does not stay in the driver for the whole search. Its peak is what torch's allocator reserved
(torch.cuda.max_memory_reserved), the figure a trial's memory cap is counted against.

k trials fit on one GPU when each one's peak, with a safety margin, plus its own CUDA context
(outside torch's allocator, so outside its cap) fits in a k-th of the card:

    peak * (1 + MARGIN) + CONTEXT_MB <= total / k

The largest such k up to MAX_PER_GPU wins, and gpus_per_trial becomes 1/k, rounded down to
Ray's precision (1e-4) so that k shares add up to at most one GPU. The trial's memory cap is
its share of the card less its CUDA context (memory_cap.cap_fraction; core.trial.limit_resources):

    cap = (total / k - CONTEXT_MB) / total

so k capped trials and their k contexts together fit on the card. Capped at total / k, the
caps alone would add up to the whole card and the contexts would come on top: trials near
their caps could then hit the driver's out-of-memory error, in a neighbour, whose message
would blame that neighbour's cap.

Without a CUDA device here, auto is an error rather than 0 GPUs: a driver without a GPU in
front of a GPU cluster would otherwise train every trial on CPUs without a word.
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import optuna
import torch

from vidtune.search_spaces import SpaceSpec, space_distributions
from vidtune.trainable.core.config import ModelConfig, TrainConfig
from vidtune.trainable.core.memory_cap import CONTEXT_MB
from vidtune.trainable.core.search_config import SearchConfig

MARGIN = 0.25          # over the measured peak: other batch shapes, fragmentation over a long run
MAX_PER_GPU = 8        # the most trials packed on one GPU (the packing gpu_check measures up to)
PROBE_CLASSES = 10     # the head's width: immaterial to the memory of these models


@dataclass(frozen=True)
class MemoryProbe:
    """One probe: the configuration trained, the memory it took, the card it ran on."""

    params: dict[str, Any]       # the sampled parameters probed (each at its largest value)
    batch_size: int
    peak_mb: float               # torch.cuda.max_memory_reserved over two training steps
    allocated_mb: float          # torch.cuda.max_memory_allocated over the same steps
    total_mb: float              # the whole card
    gpu_name: str
    # In use on the card beyond the probe's tensors: its CUDA context and cuDNN/cuBLAS
    # handles, plus whatever other processes hold. On an otherwise idle GPU: the context.
    beyond_torch_mb: float = 0.0


def largest_value(dist: optuna.distributions.BaseDistribution) -> Any:
    """The largest value a distribution can give: its high end, or its largest numeric choice
    (a categorical of other values: its first choice)."""
    if isinstance(dist, (optuna.distributions.IntDistribution, optuna.distributions.FloatDistribution)):
        return dist.high
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        numbers = [c for c in dist.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        return max(numbers) if numbers else dist.choices[0]
    raise ValueError(f"no largest value for a distribution of type {type(dist).__name__}")


def largest_params(space: SpaceSpec) -> dict[str, Any]:
    """Every parameter the space samples at its largest value: the most memory it can ask."""
    return {name: largest_value(dist) for name, dist in space_distributions(space).items()}


def per_gpu(peak_mb: float, total_mb: float, margin: float = MARGIN, context_mb: float = CONTEXT_MB,
            most: int = MAX_PER_GPU) -> int:
    """The most trials of a measured peak that fit on a card of total_mb (0: not even one)."""
    if peak_mb <= 0 or total_mb <= 0:
        raise ValueError(f"peak_mb ({peak_mb}) and total_mb ({total_mb}) must be > 0")
    need = peak_mb * (1 + margin) + context_mb
    return max(0, min(most, math.floor(total_mb / need)))


def share_of(k: int) -> float:
    """gpus_per_trial for k trials per GPU: 1/k rounded down to Ray's 1e-4, so k of them fit."""
    if k < 1:
        raise ValueError(f"k is {k}, but must be >= 1")
    return math.floor(10_000 / k) / 10_000


def _probe_here(model_cfg: ModelConfig, train_cfg: TrainConfig, frames: int, height: int,
                width: int) -> tuple[float, float, float, str, float]:
    """In the child: two training steps on this process's GPU -> (reserved, allocated, total
    MiB, name, in use beyond torch's reserve MiB). Imports inside: the child is a fresh
    interpreter."""
    from vidtune.data import to_float
    from vidtune.trainable.core.loop import make_optimizer, pick_device, train_one_epoch
    from vidtune.trainable.core.model import build_model

    device = pick_device("cuda")
    model = build_model(model_cfg, seed=0).to(device)
    optimizer = make_optimizer(model, train_cfg)
    shape = (train_cfg.batch_size, frames, height, width, 3)
    clips = to_float(torch.randint(0, 256, shape, dtype=torch.uint8, device=device))   # (B, T, 3, H, W)
    labels = torch.randint(0, model_cfg.num_classes, (train_cfg.batch_size,), device=device)
    train_one_epoch(model, [(clips, labels)] * 2, optimizer, device, train_cfg.grad_clip)
    torch.cuda.synchronize(device)
    mb = 1024.0**2
    props = torch.cuda.get_device_properties(device)
    free, total = torch.cuda.mem_get_info(device)
    beyond = (total - free - torch.cuda.memory_reserved(device)) / mb
    return (torch.cuda.max_memory_reserved(device) / mb, torch.cuda.max_memory_allocated(device) / mb,
            props.total_memory / mb, props.name, beyond)


def probe_memory(cfg: SearchConfig, params: dict[str, Any] | None = None) -> MemoryProbe:
    """Train two steps of `params` (default: the space's largest) in a child process on this
    machine's GPU and measure the memory it took."""
    from vidtune.trainable.core.trial import trial_configs

    params = dict(largest_params(cfg.space) if params is None else params)
    # The configs are built here, so the child needs no search space (a user's may exist only
    # in this process).
    model_cfg, train_cfg = trial_configs(params, cfg, PROBE_CLASSES)
    d = cfg.data
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        reserved, allocated, total, name, beyond = pool.submit(
            _probe_here, model_cfg, train_cfg, d.frames, d.height, d.width).result()
    return MemoryProbe(params, train_cfg.batch_size, reserved, allocated, total, name, beyond)


def resolve_gpus_per_trial(cfg: SearchConfig) -> tuple[SearchConfig, str]:
    """cfg with --gpus-per-trial auto replaced by a measured share, and a line saying how it
    was picked ("" when it was not auto). ValueError, naming the fix, without a CUDA device
    or when not even one trial fits on the GPU."""
    if not cfg.gpus_auto:
        return cfg, ""
    if not torch.cuda.is_available():
        raise ValueError("--gpus-per-trial auto measures the GPU memory a trial needs on this "
                         "machine, but torch sees no CUDA device here; give a number instead "
                         "(e.g. --gpus-per-trial 0.25 for four trials per GPU, 0 for CPU trials)")
    from vidtune.trainable.core.preflight import check_space_fits_clips

    check_space_fits_clips(cfg)   # the probe would fail on clips too small for the space's models
    probe = probe_memory(cfg)
    k = per_gpu(probe.peak_mb, probe.total_mb)
    need = probe.peak_mb * (1 + MARGIN) + CONTEXT_MB
    if k == 0:
        raise ValueError(f"the largest model of space {cfg.space!r} ({probe.params}) needs "
                         f"{need:.0f} MiB at batch size {probe.batch_size} (peak {probe.peak_mb:.0f} "
                         f"MiB + {MARGIN:.0%} + {CONTEXT_MB:.0f} MiB of CUDA context), more than "
                         f"the {probe.total_mb:.0f} MiB of {probe.gpu_name}; lower --batch-size or "
                         "--frames/--height/--width, or use a space of smaller models")
    share = share_of(k)
    note = (f"--gpus-per-trial auto: {share:g} ({k} trials per GPU). The largest model of space "
            f"{cfg.space!r} peaked at {probe.peak_mb:.0f} MiB (batch {probe.batch_size}, "
            f"{cfg.data.frames}x{cfg.data.height}x{cfg.data.width}); with a {MARGIN:.0%} margin and "
            f"{CONTEXT_MB:.0f} MiB of CUDA context each trial needs {need:.0f} MiB of the "
            f"{probe.total_mb:.0f} MiB of {probe.gpu_name}")
    return replace(cfg, gpus_per_trial=share), note
