"""One trial of the search as plain Python: sampled parameters in, per-epoch reports out.

No Ray here: `report(metrics, state)` is supplied by the caller (tune_adapter wires it to
ray.tune.report with a checkpoint; tests and benchmarks can pass a plain function).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from vidtune.data import DataConfig, make_loaders
from vidtune.search_spaces import to_hparams
from vidtune.trainable.core.config import DATA_PARAMS, ModelConfig, TrainConfig, split_params
from vidtune.trainable.core.encoders import weights_for
from vidtune.trainable.core.loop import DivergedError, Threads, fit, pick_device
from vidtune.trainable.core.memory_cap import cap_fraction
from vidtune.trainable.core.model import build_model
from vidtune.trainable.core.precision import choose_precision
from vidtune.trainable.core.search_config import SearchConfig

Report = Callable[[dict[str, Any], dict[str, Any] | None], None]   # (metrics, resumable state)


def _hparams(params: dict[str, Any], cfg: SearchConfig) -> dict[str, Any]:
    """The search's batch size, then the space's constants, then the sampled values (last wins).

    A space in a user's file is loaded again here, in the trial's worker (by its path, checked
    against the content hash the search recorded).
    """
    return {"batch_size": cfg.batch_size, **cfg.search_space().constants, **to_hparams(params)}


def trial_data(params: dict[str, Any], cfg: SearchConfig) -> DataConfig:
    """The data config a trial trains on: the search's, with what the space samples or fixes
    for it (augment on or off) in place."""
    hp = _hparams(params, cfg)
    given = {k: hp[k] for k in DATA_PARAMS if k in hp}
    if "augment" in given:
        given["augment"] = bool(given["augment"])
    return replace(cfg.data, **given) if given else cfg.data


def trial_configs(params: dict[str, Any], cfg: SearchConfig, num_classes: int) -> tuple[ModelConfig, TrainConfig]:
    """A trial's sampled parameters -> the configs it trains with (retrain uses the same)."""
    hp = {k: v for k, v in _hparams(params, cfg).items() if k not in DATA_PARAMS}
    hp.update(epochs=cfg.max_epochs, seed=cfg.seed, num_classes=num_classes, precision=cfg.precision)
    return split_params(hp)


@dataclass(frozen=True)
class Grant:
    """What a trial was given, reported with every epoch so trials.csv shows the cap took effect."""

    device: str                  # "cpu" or "cuda:<index>" (the index within the trial's visible GPUs)
    cpu_threads: int
    gpu_share: float = 0.0       # Ray's fraction of one GPU (0: none)
    gpu_name: str = ""
    gpu_total_mb: float = 0.0    # the whole card
    gpu_cap_mb: float = 0.0      # this trial's CUDA memory cap (0: uncapped)
    gpu_uuid: str = ""           # the physical card, as nvidia-smi -L names it ("GPU-8f3c...")
    gpu_pci: str = ""            # its PCI address, as nvidia-smi shows it ("0000:18:00.0")

    def metrics(self) -> dict[str, Any]:
        return {"device": self.device, "cpu_threads": self.cpu_threads, "gpu_share": self.gpu_share,
                "gpu_name": self.gpu_name, "gpu_total_mb": self.gpu_total_mb,
                "gpu_cap_mb": self.gpu_cap_mb, "gpu_uuid": self.gpu_uuid, "gpu_pci": self.gpu_pci}


class TrialMemoryError(torch.OutOfMemoryError):
    """CUDA ran out of memory in a trial; the message names the trial's share and memory cap.

    Still a torch.OutOfMemoryError. `over_cap` says which limit was hit: the trial's own cap
    (the card still had the memory free) is deterministic, the same configuration hits it
    again, so it is not retried (core.failures); a full card (a neighbour, another process)
    may pass on a retry.
    """

    over_cap: bool = False


_SIZE = r"([0-9.]+) (B|KiB|MiB|GiB|TiB)"
_UNITS = {"B": 1 / 1024**2, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "TiB": 1024.0**2}


def oom_sizes(text: str) -> tuple[float, float] | None:
    """(MiB asked for, MiB the card had free) from torch's CUDA out-of-memory message, or None.

    torch says "Tried to allocate 24.50 GiB. GPU 0 has a total capacity of 79.19 GiB of which
    60.12 GiB is free." (c10/cuda/CUDACachingAllocator.cpp).
    """
    asked = re.search(rf"Tried to allocate {_SIZE}", text)
    free = re.search(rf"of which {_SIZE} is free", text)
    if asked is None or free is None:
        return None
    return (float(asked[1]) * _UNITS[asked[2]], float(free[1]) * _UNITS[free[2]])


def memory_error(exc: BaseException, grant: Grant | None) -> TrialMemoryError:
    """torch's out-of-memory error, restated with what the trial was given and the fix."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "CUDA out of memory."
    gib = 1024.0
    sizes = oom_sizes(text)
    # Over its own cap when the card still had what was asked for: the set fraction refused it.
    over_cap = bool(grant is not None and grant.gpu_cap_mb and sizes and sizes[1] >= sizes[0])
    if grant is not None and grant.gpu_cap_mb:
        where = (f"capped at {grant.gpu_cap_mb / gib:.1f} GiB ({grant.gpu_share:g} of the "
                 f"{grant.gpu_total_mb / gib:.1f} GiB of {grant.gpu_name}, --gpus-per-trial "
                 f"{grant.gpu_share:g}, less its CUDA context)")
    elif grant is not None and grant.gpu_total_mb:
        where = f"on a whole {grant.gpu_name} ({grant.gpu_total_mb / gib:.1f} GiB, no cap)"
    else:
        where = "on its GPU"
    why = (" It hit its own cap, so a retry would too: not retried." if over_cap else
           " The card itself was full (a neighbour or another process holds its memory)."
           if grant is not None and grant.gpu_cap_mb and sizes else "")
    err = TrialMemoryError(f"trial ran out of CUDA memory, {where}: {first}{why} Give each trial "
                           "more (a larger --gpus-per-trial) or let it need less (a smaller "
                           "--batch-size, or a space with smaller models)")
    err.over_cap = over_cap
    return err


def memory_cap(device: torch.device, share: float, total_mb: float) -> tuple[int, float] | None:
    """(device index, fraction) for torch.cuda.set_per_process_memory_fraction, or None: no cap.

    The fraction is memory_cap.cap_fraction: the share of the card less the trial's own CUDA
    context, which sits outside torch's allocator and so outside any fraction torch enforces.
    torch resolves the device with _get_device_index(optional=False), which rejects a bare
    torch.device("cuda"): the cap always names its index (pick_device gives one).
    """
    if device.type != "cuda" or not 0 < share < 1:
        return None
    if device.index is None:
        raise ValueError(f"device {device} has no index; use pick_device(), which gives cuda:<index>")
    return device.index, cap_fraction(share, total_mb)


def physical_gpu(props: Any) -> tuple[str, str]:
    """(UUID as nvidia-smi -L prints it, PCI address) of a torch device's properties; "" where
    this torch does not say (pci_* came in torch 2.x releases after uuid)."""
    uuid = str(getattr(props, "uuid", "") or "")
    if uuid and not uuid.startswith("GPU-"):
        uuid = f"GPU-{uuid}"
    try:
        pci = f"{props.pci_domain_id:04x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    except AttributeError:
        pci = ""
    return uuid, pci


def limit_resources(cfg: SearchConfig) -> tuple[torch.device, Grant]:
    """Keep a trial within its share: torch threads = its CPUs, CUDA memory = its GPU fraction.

    Ray's resources are only logical: without this a 0.25-GPU trial could take the whole card,
    and a 0-GPU trial on a GPU node would train on GPU 0 (pick_device). Above one GPU a trial
    would still train on one (SearchConfig refuses --gpus-per-trial > 1 for that reason).
    """
    threads = max(1, int(cfg.cpus_per_trial))
    torch.set_num_threads(threads)
    device = pick_device(gpus=cfg.gpus_per_trial)
    if device.type != "cuda":   # a CPU trial, or a fake GPU in tests: the share is recorded, no cap
        return device, Grant(str(device), threads, cfg.gpus_per_trial)
    props = torch.cuda.get_device_properties(device.index)
    mb = 1024.0**2
    total_mb = float(props.total_memory) / mb
    cap = memory_cap(device, cfg.gpus_per_trial, total_mb)
    if cap is not None:
        torch.cuda.set_per_process_memory_fraction(cap[1], cap[0])
    uuid, pci = physical_gpu(props)
    return device, Grant(str(device), threads, cfg.gpus_per_trial, props.name, round(total_mb, 1),
                         round(total_mb * cap[1], 1) if cap else 0.0, uuid, pci)


def run_trial(params: dict[str, Any], cfg: SearchConfig, report: Report,
              resume: dict[str, Any] | None = None, device: torch.device | None = None,
              grant: Grant | None = None, threads: Threads | None = None) -> None:
    """Train one configuration for up to cfg.max_epochs, reporting after every epoch.

    Each report carries epoch, train_loss, val_loss, val_acc, epoch_time_s and diverged (0/1),
    plus what the trial was given (`grant`: device, GPU share and memory cap), the torch
    threads it ran the epoch with (`threads()` may raise them when cores fall idle) and what
    it computed in (precision: bf16 or fp32, and precision_reason: why, core/precision.py).
    A NaN/inf loss ends the trial with one report of diverged=1 and val_acc=0 instead of
    raising, so the search goes on. CUDA out of memory raises a TrialMemoryError that names
    the trial's memory cap.
    """
    given = grant.metrics() if grant is not None else {}
    # decode=False: the driver built the video cache before trials started (on a cluster, in
    # the shared --cache-dir); a trial that cannot find it fails instead of decoding it again.
    data = trial_data(params, cfg)
    loaders = make_loaders(data, batch_size=int(_hparams(params, cfg)["batch_size"]),
                           progress=False, decode=False)
    model_cfg, train_cfg = trial_configs(params, cfg, len(loaders.class_names))
    # Resolved here for the record and passed on resolved, so fit computes what is reported.
    precision = choose_precision(train_cfg.precision, device or pick_device())
    train_cfg = replace(train_cfg, precision=precision.name)
    given = {**given, "precision": precision.name, "precision_reason": precision.reason}
    model = build_model(model_cfg, seed=train_cfg.seed,
                        encoder_weights=weights_for(data.encoder_weights, model_cfg.encoder))

    if resume is not None and resume["epoch"] >= train_cfg.epochs:
        # Finished before the driver went down, but its end was never recorded: report it again.
        report({**given, **resume["history"][-1], "diverged": 0}, resume)
        return

    done = 0 if resume is None else int(resume["epoch"])   # epochs completed so far

    def on_epoch(metrics: dict[str, float], state_fn: Callable[[], dict[str, Any]]) -> bool:
        nonlocal done
        done = int(metrics["epoch"])
        report({**given, **metrics, "diverged": 0}, state_fn())
        return False

    try:
        fit(model, loaders.train, loaders.val, train_cfg, model_cfg.num_classes,
            device=device, on_epoch=on_epoch, resume=resume, threads=threads)
    except DivergedError:
        report({**given, "epoch": done + 1, "train_loss": math.nan, "val_loss": math.nan,
                "val_acc": 0.0, "epoch_time_s": 0.0, "diverged": 1}, None)
    except torch.OutOfMemoryError as exc:
        raise memory_error(exc, grant) from exc
