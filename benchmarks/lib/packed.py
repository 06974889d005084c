"""Packed trials without Ray: k plain processes on one GPU, as Ray workers would run them.

Each process does what trainable/tune/adapter.py does in a Ray worker, minus Ray:
limit_resources (torch threads = its CPUs, CUDA memory capped at its share less its CUDA
context), then core.trial.run_trial with a report that appends every epoch's metrics to a
JSON-lines file. The device machine has no Ray (docs/benchmarks.md, part 6), and Ray's
fractional GPUs are bookkeeping only: what decides a packing on a real card is these k
processes, their caps and their contexts. Ray's scheduling of fractions stays tested on CPU
with fake GPUs (tests/test_packing.py, bench_search part 5).

The parent samples the GPU (NVML) while they run, stops them at its deadline (what they
reported so far is kept), and turns the files into a PackedRun (gpus.packed_figures).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.lib.gpu_util import UtilSampler
from benchmarks.lib.gpus import PackedRun, packed_figures
from vidtune.trainable.core.search_config import SearchConfig

MB = 1024.0**2


def _append(path: str, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def trial_process(params: dict[str, Any], cfg: SearchConfig, out: str) -> None:
    """In the child: one trial as a Ray worker runs it, its reports appended to `out`."""
    import torch

    from vidtune.trainable.core.failures import one_line
    from vidtune.trainable.core.trial import limit_resources, run_trial

    started_at = time.time()
    device, grant = limit_resources(cfg)

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        _append(out, {"kind": "epoch", **metrics, "started_at": started_at, "reported_at": time.time()})

    end: dict[str, Any] = {"kind": "end", "status": "completed", **grant.metrics()}
    try:
        run_trial(params, cfg, report, device=device, grant=grant)
    except BaseException as exc:  # noqa: BLE001 - recorded for the parent, the process ends anyway
        end.update(status="errored", error=one_line(exc), over_cap=getattr(exc, "over_cap", None))
    finally:
        if device.type == "cuda":   # what the cap limits: torch's reserve, not only its tensors
            end["peak_reserved_mb"] = round(torch.cuda.max_memory_reserved(device) / MB, 1)
            end["peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / MB, 1)
        end["ended_at"] = time.time()
        _append(out, end)


def read_trial(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(its epochs, its end record; {} if it was stopped before it ended) of one trial's file."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
        if path.is_file() else []
    epochs = pd.DataFrame([r for r in rows if r.get("kind") == "epoch"])
    ends = [r for r in rows if r.get("kind") == "end"]
    return epochs, (ends[-1] if ends else {})


def start_up_s(runs: list[pd.DataFrame], launched_at: float) -> float:
    """Seconds from the launch until the last trial began training (its first epoch's report
    less that epoch's time): spawn, imports, the CUDA context, the loaders."""
    began = [float(df["reported_at"].iloc[0] - df["epoch_time_s"].iloc[0]) for df in runs if len(df)]
    return max(0.0, max(began) - launched_at) if began else 0.0


def predict_wall(k: int, last_k: int, last_wall: float, last_start_up: float) -> float:
    """The wall time of k packed trials, from a run of last_k: the start-up is paid once (the
    trials start side by side), the training grows with the trials on a GPU they keep busy.
    Scaling the whole wall with k would count the start-up k times over."""
    if k < 1 or last_k < 1:
        raise ValueError(f"k ({k}) and last_k ({last_k}) must be >= 1")
    return last_start_up + max(0.0, last_wall - last_start_up) * k / last_k


def run_packed(k: int, share: float, root: str | Path, cfg: SearchConfig, params: dict[str, Any],
               train_clips: int, deadline: float, log=print) -> PackedRun:
    """k processes of `params` at gpus_per_trial `share` each (0: CPU trials), until they end
    or time.time() reaches `deadline` (then stopped; their reports so far count)."""
    folder = Path(root) / f"packed-{k}"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, gpus_per_trial=share, num_samples=k)
    files = [folder / f"trial_{i}.jsonl" for i in range(k)]
    for f in files:
        f.unlink(missing_ok=True)
    spawn = multiprocessing.get_context("spawn")   # a fresh interpreter, as a Ray worker is
    t0 = time.time()
    procs = [spawn.Process(target=trial_process, args=(params, cfg, str(f)), daemon=True,
                           name=f"vidtune-packed-{k}-{i}") for i, f in enumerate(files)]
    stopped: list[Any] = []
    with UtilSampler() as sampler:
        try:
            for p in procs:
                p.start()
            while any(p.is_alive() for p in procs) and time.time() < deadline:
                time.sleep(0.2)
        finally:   # at the deadline, or on the run's own alarm: no trial outlives its run
            stopped = [p for p in procs if p.is_alive()]
            for p in stopped:
                p.terminate()
            for p in procs:
                if p.pid is None:
                    continue
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
                    p.join()
    wall = time.time() - t0
    if stopped:
        log(f"packed {k}: {len(stopped)} trials stopped at the time budget; their epochs so far count")
    read = [read_trial(f) for f in files]
    runs = [df for df, _ in read if len(df)]
    ends = [end for _, end in read]
    errors = sum(1 for e in ends if e.get("status") == "errored")
    for e in ends:
        if e.get("error"):
            log(f"packed {k}: a trial errored: {e['error']}")
    trials = pd.DataFrame([{
        "gpu_peak_mb": float(df["gpu_peak_mb"].max()) if len(df) and "gpu_peak_mb" in df else None,
        "gpu_cap_mb": end.get("gpu_cap_mb", df["gpu_cap_mb"].iloc[-1] if len(df) and "gpu_cap_mb" in df else None),
    } for df, end in read])
    run = packed_figures(k, share, runs, train_clips, sampler.samples, sampler.source, errors,
                         trials, wall)
    card = [mb for _, mb in sampler.memory]
    return replace(run, reserved_mb=[float(e["peak_reserved_mb"]) for e in ends if "peak_reserved_mb" in e],
                   card_peak_mb=max(card) if card else None, start_up_s=start_up_s(runs, t0),
                   stopped=len(stopped), device=str(ends[0].get("device", "")) if ends and ends[0] else "")
