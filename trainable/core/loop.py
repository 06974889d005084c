"""The pure-PyTorch training loop: no Ray here.

fit() trains for cfg.epochs, calling `on_epoch(metrics, state_fn)` after every epoch; the
caller decides what to do with it (print, checkpoint, report to Ray). A run can resume from a
state dict produced by state_fn(): model, optimizer, epochs done, the RNGs (the CPU's, and CUDA's
on a GPU) and history.

On CUDA the loop never waits for the GPU inside an epoch: batches arrive through
data.device (uint8 copied without blocking, converted on the GPU, the next one prefetched),
the loss is summed on the device and read once per epoch, the confusion matrix is counted
on the device, and cuDNN picks its fastest kernels for the batch shapes (cudnn.benchmark).

What the loop computes in is core/precision.py's one rule (TrainConfig.precision: auto, bf16
or fp32), for training and evaluation alike: bf16 autocast where the device has bf16 units
(on the CPU: AMX or AVX512-BF16), fp32 elsewhere; the LSTM in fp32 always. On the CPU the
per-frame CNN's weights are channels_last in fp32 (TrainConfig.channels_last): the loader's
frames already lie channels-last in memory, and matching weights measured faster in fp32 but
slower in bf16 (docs/benchmarks.md, bench_throughput); on CUDA it is unmeasured and not used.
Evaluation runs under torch.inference_mode. With precision fp32 and channels_last off, every
float on the CPU is computed as before these paths existed (a test holds it bit-exact).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from vidtune.data.device import TimedLoader, on_device
from vidtune.trainable.core.config import TrainConfig
from vidtune.trainable.core.precision import Precision, choose_precision

MB = 1024.0**2


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    per_class_accuracy: list[float]
    confusion: list[list[int]]     # confusion[true][pred]


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def pick_device(device: str | None = None, gpus: float | None = None) -> torch.device:
    """The device to train on, always with an index on CUDA ("cuda:0", never bare "cuda").

    `device` names it outright. Else `gpus` is what the trial was granted: 0 means the CPU even
    where torch sees a GPU, because Ray 2.60 no longer blanks CUDA_VISIBLE_DEVICES for an
    actor given no GPU (a CPU trial on a GPU node would otherwise train on GPU 0, uncapped).
    Without either: CUDA where torch sees it (retrain, evaluate, predict in this process).

    Ray sets CUDA_VISIBLE_DEVICES per GPU trial, so the trial's own GPU is the current one.
    torch.cuda.set_per_process_memory_fraction and memory stats reject an index-less device.
    """
    if device is None and gpus is not None and gpus <= 0:
        return torch.device("cpu")   # no CUDA call at all: no context on a GPU it was not given
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", torch.cuda.current_device())
    return chosen


def _precision(precision: str | Precision, device: torch.device) -> Precision:
    return precision if isinstance(precision, Precision) else choose_precision(precision, device)


def use_channels_last(cfg: TrainConfig, device: torch.device, precision: Precision) -> bool:
    """channels_last weights for the per-frame CNN: on the CPU in fp32, where it was measured
    faster (1.57x); in bf16 it was slower (1.72x against bf16's own 2.19x over fp32)."""
    return cfg.channels_last and device.type == "cpu" and precision.name == "fp32"


def _prepare(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once per input shape and keep the
    fastest: a loader's batches have one shape (and a last, smaller one)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def gpu_peak_mb(device: torch.device) -> float:
    """The most CUDA memory torch's allocator has held for tensors on `device` since the last
    reset (torch.cuda.max_memory_allocated), in MiB; 0 on the CPU."""
    if device.type != "cuda":
        return 0.0
    return torch.cuda.max_memory_allocated(device) / MB


# threads() -> how many torch threads to use now; read before every batch (see follow_threads).
Threads = Callable[[], int]


def follow_threads(threads: Threads | None) -> None:
    """Set torch's intra-op threads to what `threads` says, if it changed.

    Called on the training thread itself: OpenMP's thread count is per calling thread, so
    another thread cannot change it for us.
    """
    if threads is not None:
        n = max(1, int(threads()))
        if n != torch.get_num_threads():
            torch.set_num_threads(n)


def train_one_epoch(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]],
                    optimizer: torch.optim.Optimizer, device: torch.device,
                    grad_clip: float = 0.0, threads: Threads | None = None,
                    precision: str | Precision = "auto") -> float:
    """One pass over `loader`; returns the mean training loss. Raises DivergedError on NaN/inf.

    `precision`: auto, bf16 or fp32, or a Precision already chosen (core/precision.py).

    The loss is summed on the device in float64 (the same sums, in the same order, as Python
    floats on the CPU) and read once, at the end. On the CPU a NaN/inf loss stops the epoch at
    once (reading it there costs nothing); on CUDA, reading it would make the host wait for
    the GPU every batch, so a NaN/inf is caught in the epoch's sum instead.
    """
    _prepare(device)
    autocast = _precision(precision, device).autocast
    model.train()
    check_each_batch = device.type != "cuda"
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for clips, labels in on_device(loader, device):
        follow_threads(threads)
        clips = clips.to(device, non_blocking=True)       # (B, T, C, H, W)
        labels = labels.to(device, non_blocking=True)     # (B,)
        with autocast(device):
            loss = nn.functional.cross_entropy(model(clips), labels)
        if check_each_batch and not torch.isfinite(loss):
            raise DivergedError(f"training loss became {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += loss.detach().double() * len(labels)
        count += len(labels)
    mean = total.item() / max(count, 1)   # the epoch's one wait for the GPU
    if not math.isfinite(mean):
        raise DivergedError(f"training loss became {mean} during the epoch")
    return mean


@torch.inference_mode()
def evaluate(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], device: torch.device,
             num_classes: int, precision: str | Precision = "auto") -> EvalResult:
    """Loss, accuracy, per-class accuracy and confusion matrix over `loader`.

    Clips (B, k, T, C, H, W) are k windows of each clip (multi-clip evaluation): the model's
    probabilities are averaged over the windows, and the loss is that average's. Loss and
    confusion are summed on the device and read once, at the end (bincount would wait for the
    GPU every batch to size its output; scatter_add_ does not).
    """
    _prepare(device)
    autocast = _precision(precision, device).autocast
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for clips, labels in on_device(loader, device):
        clips = clips.to(device, non_blocking=True)      # (B, T, C, H, W)
        labels = labels.to(device, non_blocking=True)    # (B,)
        with autocast(device):
            if clips.ndim == 6:
                B, k = clips.shape[:2]
                probs = model(clips.flatten(0, 1)).float().softmax(-1).view(B, k, -1).mean(1)
                logits = probs.clamp_min(1e-12).log()     # (B, num_classes): log of the average
            else:
                logits = model(clips).float()             # (B, num_classes)
        total += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
        count += len(labels)
        pairs = labels * num_classes + logits.argmax(1)   # (B,) index of (true, pred)
        confusion.scatter_add_(0, pairs, torch.ones_like(pairs))
    confusion = confusion.view(num_classes, num_classes).cpu()   # the pass's one wait
    per_class = confusion.diag().float() / confusion.sum(1).clamp(min=1).float()
    accuracy = confusion.diag().sum().item() / max(count, 1)
    loss = total.item() / max(count, 1)
    return EvalResult(loss=loss if math.isfinite(loss) else float("inf"), accuracy=accuracy,
                      per_class_accuracy=per_class.tolist(), confusion=confusion.tolist())


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


# on_epoch(metrics, state_fn) -> True to stop early. state_fn() builds a resumable state dict.
EpochCallback = Callable[[dict[str, float], Callable[[], dict[str, Any]]], bool | None]


def fit(model: nn.Module, train_loader, val_loader, cfg: TrainConfig, num_classes: int,
        device: torch.device | None = None, on_epoch: EpochCallback | None = None,
        resume: dict[str, Any] | None = None, threads: Threads | None = None) -> FitResult:
    """Train for cfg.epochs (minus those already done in `resume`), evaluating after each epoch.

    Metrics per epoch: epoch (1-based count of epochs done), train_loss, val_loss, val_acc,
    epoch_time_s, cpu_threads, data_s (seconds the loop waited for its batches, train and val)
    and gpu_peak_mb (the most CUDA memory this run's tensors have held so far; 0 on the CPU).
    cfg.precision is resolved once, for the whole run (choose_precision).
    Deterministic on CPU for a given cfg.seed and thread count, also across a resume. Another
    thread count changes float sums in the last digits only.
    """
    device = device or pick_device()
    if device.type == "cuda":   # this run's peak, not that of a trial run earlier in the process
        torch.cuda.reset_peak_memory_stats(device)
    train_batches, val_batches = on_device(train_loader, device), on_device(val_loader, device)
    precision = choose_precision(cfg.precision, device)
    model.to(device)
    if use_channels_last(cfg, device, precision):
        model.to(memory_format=torch.channels_last)   # 4-D weights only: the CNN's convs
    optimizer = make_optimizer(model, cfg)
    result = FitResult()
    start_epoch = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        start_epoch = int(resume["epoch"])
        result.history = list(resume.get("history", []))
        torch.set_rng_state(resume["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in resume:   # dropout's stream on the GPU
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
    else:
        torch.manual_seed(cfg.seed)

    def state_fn() -> dict[str, Any]:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": len(result.history),
            "history": list(result.history),
            "torch_rng": torch.get_rng_state(),
        }
        if device.type == "cuda":   # CUDA's generator is separate: dropout on the GPU draws from it
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        return state

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        train, val = TimedLoader(train_batches), TimedLoader(val_batches)
        train_loss = train_one_epoch(model, train, optimizer, device, cfg.grad_clip, threads,
                                     precision)
        follow_threads(threads)
        ev = evaluate(model, val, device, num_classes, precision)
        metrics = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": ev.loss,
            "val_acc": ev.accuracy,
            "epoch_time_s": time.perf_counter() - t0,
            "cpu_threads": torch.get_num_threads(),
            "data_s": train.seconds + val.seconds,
            "gpu_peak_mb": round(gpu_peak_mb(device), 1),
        }
        result.history.append(metrics)
        if on_epoch is not None and on_epoch(metrics, state_fn):
            result.stopped_early = True
            break
    return result
