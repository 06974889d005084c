"""Benchmark: how much of an epoch is data loading, on the default CPU config.

The same epoch (one pass over train, then val, as fit() does it) is timed twice with a freshly
seeded model: once fed by the real loader (uint8 memmap gather + float conversion per batch;
on a GPU data.device's path: pinned gather, copy, conversion on the GPU) and once fed by the
very same batches, already converted to float, on the device, and held in a list. The
difference, divided by the real epoch, is the data-loading share; the goal is <= 5 %.
Two cross-checks: the time spent inside the loader during the real epoch, and the loader
iterated alone (no model). Medians of a few repeats; real and in-memory runs alternate, so a
slow drift of the machine does not favour one of them.

benchmarks/bench_data.py runs it alone; the search benchmark runs it as its part 2.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.lib.common import (
    SMOKE_NOTE,
    Verdict,
    describe_data,
    describe_model,
    machine_line,
    spread,
    write_section,
)
from vidtune.data import DataConfig, Loaders, load_arrays, make_loaders
from vidtune.data.device import TimedLoader, on_device
from vidtune.trainable.core.config import ModelConfig, TrainConfig
from vidtune.trainable.core.loop import evaluate, make_optimizer, pick_device, train_one_epoch
from vidtune.trainable.core.model import build_model

GOAL_SHARE = 0.05                     # data loading <= 5 % of epoch time
KEY = "bench_data"                    # its section of the markdown file

# --smoke: tiny clips and a tiny model, so the whole benchmark runs in seconds.
SMOKE_DATA = DataConfig(num_clips=96, frames=4, height=16, width=16, noise=0.2)
SMOKE_MODEL = ModelConfig(conv_widths=(8, 16), lstm_hidden=16, spatial_pool=2)


@dataclass(frozen=True)
class DataShare:
    """Medians over `repeats`, in seconds; an epoch is one train pass plus one val pass."""

    real_epoch_s: float          # fed by the real loader
    memory_epoch_s: float        # fed by the same batches, pre-converted, from a list
    in_loader_s: float           # time spent inside the real loader during the real epoch
    loader_only_s: float         # the loader iterated alone over train + val, no model
    spread: float                # (slowest - fastest) / median of the real epochs: the noise
    repeats: int
    threads: int
    device: str
    train_clips: int
    val_clips: int
    batch_size: int

    @property
    def share(self) -> float:
        """(real - in-memory) / real: what feeding the model from the store costs."""
        return (self.real_epoch_s - self.memory_epoch_s) / self.real_epoch_s

    @property
    def in_loader_share(self) -> float:
        return self.in_loader_s / self.real_epoch_s

    @property
    def difference_is_noise(self) -> bool:
        """The difference of two epochs lies within the real epochs' own run-to-run spread.

        Then it cannot tell a loading cost from the machine's drift (one repeat: no spread is
        known, so the difference counts).
        """
        return self.repeats > 1 and abs(self.share) <= self.spread

    @property
    def judged_share(self) -> float:
        """The figure the goal is judged on: the larger estimate, or the inside-loader share
        alone where the difference is noise."""
        if self.difference_is_noise:
            return self.in_loader_share
        return max(self.share, self.in_loader_share)

    @property
    def verdict(self) -> Verdict:
        # Both estimates must meet the goal: the difference of two epochs is noisy, the
        # in-loader time misses indirect costs (cache pollution), neither alone is the truth.
        # A difference within the spread says nothing either way, so the inside-loader
        # share decides then, and the cell says so.
        if self.share > GOAL_SHARE and self.difference_is_noise:
            return Verdict(self.in_loader_share <= GOAL_SHARE,
                           f"inside-loader share; the epoch difference, {100 * self.share:.1f} %, "
                           f"is within the {100 * self.spread:.1f} % run-to-run spread")
        return Verdict(self.share <= GOAL_SHARE and self.in_loader_share <= GOAL_SHARE)

    @property
    def passed(self) -> bool:
        return self.verdict.ok is True


def _timed_epoch(model_cfg: ModelConfig, train: Iterable[Any], val: Iterable[Any],
                 device: torch.device, seed: int) -> float:
    """One epoch (train pass + val pass) of a freshly seeded model: the same work every call."""
    train_cfg = TrainConfig(seed=seed)
    model = build_model(model_cfg, seed=seed).to(device)
    optimizer = make_optimizer(model, train_cfg)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    train_one_epoch(model, train, optimizer, device, train_cfg.grad_clip)
    evaluate(model, val, device, model_cfg.num_classes)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def _loader_pass(loaders: Loaders, device: torch.device) -> float:
    t0 = time.perf_counter()
    for _ in on_device(loaders.train, device):
        pass
    for _ in on_device(loaders.val, device):
        pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def measure_data_share(data: DataConfig, model_cfg: ModelConfig, batch_size: int = 32,
                       repeats: int = 3, threads: int | None = None, seed: int = 0,
                       progress: bool = True, device: torch.device | None = None) -> DataShare:
    """Time real-loader epochs against in-memory epochs of the same model and batches.

    The in-memory batches are float and already on the device, the best a data path can do:
    on a GPU the difference is the whole data path (gather, copy to the GPU, conversion).
    """
    if repeats < 1:
        raise ValueError(f"repeats is {repeats}, but must be >= 1")
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    device = device or pick_device()
    load_arrays(data, progress=progress)                      # build the cache outside the timing
    loaders = make_loaders(data, batch_size=batch_size, progress=False)
    model_cfg = replace(model_cfg, num_classes=len(loaders.class_names))
    loaders.train.set_epoch(0)                                # every epoch below sees epoch 0's order
    # float (B, T, 3, H, W) on the device (on the CPU: the loader's own tensors)
    train_batches = [(x.to(device), y.to(device)) for x, y in loaders.train]
    val_batches = [(x.to(device), y.to(device)) for x, y in loaders.val]

    # Warm-up, untimed: page cache of the store, allocator, oneDNN/cuDNN kernel selection.
    _loader_pass(loaders, device)
    _timed_epoch(model_cfg, train_batches[:2], val_batches[:1], device, seed)

    real: list[float] = []
    memory: list[float] = []
    inside: list[float] = []
    alone: list[float] = []
    for r in range(repeats):
        for variant in (("real", "memory") if r % 2 == 0 else ("memory", "real")):
            if variant == "real":
                train = TimedLoader(on_device(loaders.train, device))
                val = TimedLoader(on_device(loaders.val, device))
                real.append(_timed_epoch(model_cfg, train, val, device, seed))
                inside.append(train.seconds + val.seconds)
            else:
                memory.append(_timed_epoch(model_cfg, train_batches, val_batches, device, seed))
        alone.append(_loader_pass(loaders, device))
        if progress:
            print(f"  repeat {r + 1}/{repeats}: real {real[-1]:.2f}s, in-memory {memory[-1]:.2f}s, "
                  f"loader alone {alone[-1]:.3f}s", file=sys.stderr)
    return DataShare(
        real_epoch_s=statistics.median(real), memory_epoch_s=statistics.median(memory),
        in_loader_s=statistics.median(inside), loader_only_s=statistics.median(alone),
        spread=spread(real),
        repeats=repeats, threads=torch.get_num_threads(), device=str(device),
        train_clips=len(loaders.train.indices), val_clips=len(loaders.val.indices),
        batch_size=batch_size,
    )


def data_share_rows(r: DataShare) -> list[str]:
    """Markdown table rows (no header) of a DataShare."""
    return [
        f"| epoch, real loader (train + val) | {r.real_epoch_s:.2f} s |",
        f"| epoch, same batches pre-converted in memory | {r.memory_epoch_s:.2f} s |",
        f"| time inside the loader during a real epoch | {r.in_loader_s:.3f} s |",
        f"| loader iterated alone (train + val, no model) | {r.loader_only_s:.3f} s |",
        f"| data-loading share, (real - in-memory) / real | {100 * r.share:.1f} % |",
        f"| data-loading share, inside-loader time / real | {100 * r.in_loader_share:.1f} % |",
        *([f"| run-to-run spread of the real epochs, (max - min) / median | {100 * r.spread:.1f} % |"]
          if r.repeats > 1 else []),
    ]


def render(r: DataShare, data: DataConfig, model_cfg: ModelConfig, smoke: bool) -> str:
    """The bench_data section of the markdown file."""
    lines = [
        "## Data loading share of an epoch (`benchmarks/bench_data.py`)",
        "",
        *([SMOKE_NOTE, ""] if smoke else []),
        f"- Run: {machine_line()}.",
        f"- Config: {describe_data(data)}; {r.train_clips} train / {r.val_clips} val clips, "
        f"batch {r.batch_size}; model {describe_model(model_cfg)}; device {r.device}, "
        f"{r.threads} torch threads; median of {r.repeats} repeat(s).",
        "",
        "| measure | value |",
        "|---|---|",
        *data_share_rows(r),
        "",
        f"Goal: data loading <= {100 * GOAL_SHARE:.0f} % of epoch time (both estimates; the "
        "inside-loader one alone where the difference lies within the run-to-run spread): "
        f"{r.verdict}",
        "",
        "A difference below zero, or within the run-to-run spread, is measurement noise rather "
        "than a loading cost; the inside-loader share is the steadier of the two estimates.",
    ]
    return "\n".join(lines)


def run_data_bench(out: str | Path, smoke: bool = False, repeats: int | None = None,
                   threads: int | None = None, batch_size: int = 32) -> DataShare:
    """Measure on the default config (or the smoke sizes), write the section into out, print it."""
    data = SMOKE_DATA if smoke else DataConfig()
    model_cfg = SMOKE_MODEL if smoke else ModelConfig()
    repeats = repeats or (1 if smoke else 3)
    print(f"bench_data: {describe_data(data)}, batch {batch_size}, {repeats} repeat(s)",
          file=sys.stderr)
    result = measure_data_share(data, model_cfg, batch_size, repeats, threads)
    body = render(result, data, model_cfg, smoke)
    write_section(out, KEY, body)
    print(body)
    print(f"\nwritten to {out}", file=sys.stderr)
    return result
