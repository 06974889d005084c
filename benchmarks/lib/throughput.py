"""Benchmark: an epoch against what the hardware can do, and the levers that close the gap.

Parts (benchmarks/bench_throughput.py runs them, each can run alone with --parts):

- flops:    the model's FLOPs per clip, forward and backward (torch.utils.flop_counter), for
            each config class of the default space;
- peak:     the core's peak, a large matmul in fp32 and in bf16, on 1 and 2 threads;
- levers:   a training step of the seed model in each combination of precision (fp32, bf16
            autocast) and layout (contiguous, channels_last), evaluation under no_grad against
            inference_mode, and torch.compile's compile time and steady step (its break-even in
            epochs), on 1 and 2 threads;
- classes:  training clips/s of each config class, today's loop (fp32, contiguous) against
            the new default (precision auto, channels_last on the CPU), on 1 and 2 threads;
- profile:  where a seed-model epoch's time goes (torch.profiler): convolutions, the LSTM, the
            optimizer (AdamW and gradient clipping), the rest of the step, evaluation and the
            data path;
- accuracy: val acc after 6 epochs of the seed model on make search's data, fp32 against the
            new default, over 3 seeds (load-independent: run it on a busy machine too).

Every timing compares its variants interleaved in one process, several rounds, and reports
medians and ratios: the machine's speed drifts, and other processes share its cores.
The training steps time the model and optimizer on a batch already in memory: the data path's
share is measured separately (bench_data: under 1 % on this CPU) and in the profile part.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.lib.common import SMOKE_NOTE, describe_data, machine_line, write_section
from vidtune.data import DataConfig, make_loaders
from vidtune.data.device import TimedLoader
from vidtune.data.loaders import to_float
from vidtune.search_spaces import SEED_DEFAULT, to_hparams
from vidtune.trainable.core.config import ModelConfig, TrainConfig, split_params
from vidtune.trainable.core.loop import (
    evaluate,
    fit,
    make_optimizer,
    train_one_epoch,
    use_channels_last,
)
from vidtune.trainable.core.model import build_model
from vidtune.trainable.core.precision import choose_precision, cpu_bf16_units

KEY = "bench_throughput"
PARTS = ("flops", "peak", "levers", "classes", "profile", "compile", "accuracy")
GOAL_SPEEDUP = 1.6           # the seed model's training clips/s, new default / today's loop
GOAL_ACC_PT = 0.5            # a numerics lever stays on by default within 0.5 pt of fp32's mean
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Plan:
    data: DataConfig = field(default_factory=DataConfig)   # make search's data: 1000 clips of 8x32x32
    batch_size: int = 32
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 5              # interleaved rounds of every timed variant
    steps: int = 3               # training steps per variant per round
    matmul: tuple[int, ...] = (256, 512, 1024)   # n of the n x n matmuls that measure the peak
    matmul_repeats: int = 60     # short runs of each: the best is one no other process cut into
    epochs: int = 6              # accuracy part
    seeds: tuple[int, ...] = (0, 1, 2)
    compile_steps: int = 6       # steady steps of the compiled model timed after compiling
    profile_batches: int = 10    # training batches profiled (then the whole val pass)
    smoke: bool = False


SMOKE = Plan(data=DataConfig(num_clips=64, frames=4, height=16, width=16, noise=0.2),
             batch_size=8, threads=(1,), rounds=2, steps=1, matmul=(128,), matmul_repeats=5, epochs=1, seeds=(0,),
             compile_steps=1, smoke=True)
SMOKE_PARTS = tuple(p for p in PARTS if p != "compile")   # compiling takes minutes on 2 cores


def class_params() -> dict[str, dict[str, Any]]:
    """The default space's config classes: conv depth x width (the convolutions are most of
    the FLOPs), each with the seed's LSTM 256 and learning rate."""
    return {f"{blocks} blocks, base {base}": {**SEED_DEFAULT, "conv_blocks": blocks, "conv_base": base}
            for blocks in (2, 3) for base in (16, 32, 48)}


SEED_CLASS = "3 blocks, base 32"


def model_config(params: dict[str, Any], plan: Plan) -> ModelConfig:
    cfg, _ = split_params({**to_hparams(params), "num_classes": 10})
    if plan.smoke:   # the smoke run's tiny frames: shallow and narrow, the same code
        cfg = replace(cfg, conv_widths=cfg.conv_widths[:2], lstm_hidden=16, spatial_pool=2)
    return cfg


def _batch(plan: Plan) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as the loader makes it: uint8 (B, T, H, W, 3) through to_float, so the frames
    lie in memory channels-last already (a permuted view); a contiguous batch of the same
    values made today's fp32 step 1.2x slower, which would flatter every lever."""
    gen = torch.Generator().manual_seed(0)
    d = plan.data
    u8 = torch.randint(0, 256, (plan.batch_size, d.frames, d.height, d.width, 3), dtype=torch.uint8,
                       generator=gen)
    return to_float(u8), torch.randint(0, 10, (plan.batch_size,), generator=gen)   # (B, T, C, H, W), (B,)


# A variant of the loop: (precision, channels_last). "today" is the loop before issue 26.
VARIANTS = {"fp32": ("fp32", False), "fp32 + channels_last": ("fp32", True),
            "bf16": ("bf16", False), "bf16 + channels_last": ("bf16", True)}
TODAY, DEFAULT = "fp32", "default"


def default_variant() -> tuple[str, bool]:
    """What a trial on this CPU computes with now: precision auto, and channels_last where the
    loop uses it (fp32 only, loop.use_channels_last)."""
    precision = choose_precision("auto", CPU)
    return precision.name, use_channels_last(TrainConfig(), CPU, precision)


def make_step(model_cfg: ModelConfig, precision: str, channels_last: bool,
              batch: tuple[torch.Tensor, torch.Tensor], compiled: bool = False) -> Callable[[], None]:
    """One training step as train_one_epoch does it (autocast, loss, backward, clip, AdamW)."""
    model = build_model(model_cfg, seed=0)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, TrainConfig())
    net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if compiled else model
    autocast = choose_precision(precision, CPU).autocast
    clips, labels = batch

    def step() -> None:
        with autocast(CPU):
            loss = nn.functional.cross_entropy(net(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


def interleaved(fns: dict[str, Callable[[], None]], rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per call of each fn, timed in turn, `rounds` times (after one warm-up)."""
    return {k: statistics.median(v) for k, v in interleaved_runs(fns, rounds, steps).items()}


def interleaved_runs(fns: dict[str, Callable[[], None]], rounds: int, steps: int) -> dict[str, list[float]]:
    """Seconds per call of each fn in each round, the fns timed in turn (after one warm-up)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def _threads(n: int) -> None:
    torch.set_num_threads(n)


# -- flops -------------------------------------------------------------------------------------

def flops_per_clip(model_cfg: ModelConfig, plan: Plan) -> dict[str, float]:
    """FLOPs per clip of forward and of backward, counted by FlopCounterMode (fp32 model), and
    the share of the convolutions and the LSTM in the total.

    FlopCounterMode has no formula for the fused LSTM op (aten::lstm / mkldnn_rnn), so the
    LSTM's matmuls are added by formula: per frame and layer 2 * 4H * (F + H) forward (the four
    gates' input and recurrent products) and twice that backward (gradients of the inputs and
    of the weights); its elementwise gate arithmetic (O(H) per frame) is left out."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(model_cfg, seed=0)
    clips, labels = _batch(plan)
    counter = FlopCounterMode(display=False)
    with counter:
        loss = nn.functional.cross_entropy(model(clips), labels)
    forward = counter.get_total_flops()
    by_op = dict(counter.get_flop_counts().get("Global", {}))
    counter = FlopCounterMode(display=False)
    with counter:
        loss.backward()
    backward = counter.get_total_flops()
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        by_op[op] = by_op.get(op, 0) + n
    B, T = clips.shape[:2]
    counted = sum(n for op, n in by_op.items() if "lstm" in str(op) or "rnn" in str(op))
    lstm = 0
    if not counted:
        H, F = model_cfg.lstm_hidden, model.feature_dim
        for layer in range(model_cfg.lstm_layers):
            lstm += 2 * 4 * H * ((F if layer == 0 else H) + H) * B * T
        forward, backward = forward + lstm, backward + 2 * lstm
        lstm *= 3
    total = forward + backward
    conv = sum(n for op, n in by_op.items() if "conv" in str(op))
    lstm = lstm or counted
    return {"forward": forward / B, "backward": backward / B, "total": total / B,
            "conv_share": conv / total if total else 0.0, "lstm_share": lstm / total if total else 0.0,
            "counted_lstm": float(counted > 0)}


# -- peak --------------------------------------------------------------------------------------

def matmul_peak(sizes: tuple[int, ...], dtype: torch.dtype, repeats: int) -> float:
    """FLOP/s of n x n matmuls in `dtype` at the current thread count: the best of many short
    runs over the sizes. A peak, not a typical figure: on a shared machine a long matmul is
    always cut into by other processes (a 2048 x 2048 one measured 3 GFLOP/s under a load of
    20), while some of many millisecond-long ones run alone."""
    gen = torch.Generator().manual_seed(0)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, generator=gen).to(dtype)
        b = torch.randn(n, n, generator=gen).to(dtype)
        torch.mm(a, b)
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


# -- accuracy ----------------------------------------------------------------------------------

def accuracy_run(plan: Plan, precision: str, channels_last: bool, seed: int) -> dict[str, float]:
    """The seed model, `plan.epochs` epochs on plan.data: val acc after the last, and seconds."""
    loaders = make_loaders(plan.data, batch_size=plan.batch_size, progress=False)
    model_cfg = model_config(SEED_DEFAULT, plan)
    cfg = TrainConfig(epochs=plan.epochs, seed=seed, lr=SEED_DEFAULT["lr"], precision=precision,
                      channels_last=channels_last)
    t0 = time.perf_counter()
    result = fit(build_model(model_cfg, seed=seed), loaders.train, loaders.val, cfg, 10, device=CPU)
    return {"seed": seed, "val_acc": result.history[-1]["val_acc"], "seconds": time.perf_counter() - t0,
            "epoch_s": statistics.median(h["epoch_time_s"] for h in result.history)}


def run_accuracy(plan: Plan) -> dict[str, list[dict[str, float]]]:
    """fp32 (today) and the new default, seed by seed, one thread: {variant: [run per seed]}."""
    _threads(1)
    out: dict[str, list[dict[str, float]]] = {TODAY: [], DEFAULT: []}
    precision, cl = default_variant()
    for seed in plan.seeds:
        print(f"-- accuracy seed {seed}", file=sys.stderr)
        out[TODAY].append(accuracy_run(plan, "fp32", False, seed))
        out[DEFAULT].append(accuracy_run(plan, precision, cl, seed))
        print(f"   fp32 {out[TODAY][-1]}, default {out[DEFAULT][-1]}", file=sys.stderr)
    return out


# -- levers and classes ------------------------------------------------------------------------

def run_levers(plan: Plan, threads: int) -> dict[str, float]:
    """Seconds per training step of the seed model in each VARIANTS entry (interleaved)."""
    _threads(threads)
    batch = _batch(plan)
    cfg = model_config(SEED_DEFAULT, plan)
    return interleaved({name: make_step(cfg, p, cl, batch) for name, (p, cl) in VARIANTS.items()},
                       plan.rounds, plan.steps)


def run_eval_modes(plan: Plan, threads: int) -> dict[str, float]:
    """Seconds per evaluation batch of the seed model (new default) under no_grad and under
    inference_mode, interleaved."""
    _threads(threads)
    clips, _ = _batch(plan)
    precision, cl = default_variant()
    model = build_model(model_config(SEED_DEFAULT, plan), seed=0).eval()
    if cl:
        model.to(memory_format=torch.channels_last)
    autocast = choose_precision(precision, CPU).autocast

    def under(mode: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with mode(), autocast(CPU):
                model(clips)
        return run
    return interleaved({"no_grad": under(torch.no_grad), "inference_mode": under(torch.inference_mode)},
                       plan.rounds, plan.steps)


def run_compile(plan: Plan, threads: int, eager_step_s: float) -> dict[str, float]:
    """torch.compile of the seed model (new default): compile time (the first steps, minus an
    eager step each), steady step, and the break-even in epochs of make search's data."""
    _threads(threads)
    precision, cl = default_variant()
    step = make_step(model_config(SEED_DEFAULT, plan), precision, cl, _batch(plan), compiled=True)
    t0 = time.perf_counter()
    step()
    step()   # the second call may still compile (backward, recompiles)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(plan.compile_steps):
        step()
    steady = (time.perf_counter() - t0) / plan.compile_steps
    steps_per_epoch = -(-int(plan.data.num_clips * (1 - plan.data.val_fraction)) // plan.batch_size)
    saved_per_epoch = (eager_step_s - steady) * steps_per_epoch
    compile_s = first_s - 2 * steady
    return {"compile_s": compile_s, "step_s": steady, "eager_step_s": eager_step_s,
            "break_even_epochs": compile_s / saved_per_epoch if saved_per_epoch > 0 else float("inf")}


def run_classes(plan: Plan, threads: int) -> dict[str, dict[str, float]]:
    """Seconds per training step of each config class, today's loop and the new default (half
    the levers' rounds and steps: twelve models a thread count)."""
    _threads(threads)
    batch = _batch(plan)
    precision, cl = default_variant()
    out: dict[str, dict[str, float]] = {}
    for name, params in class_params().items():
        cfg = model_config(params, plan)
        runs = interleaved_runs({TODAY: make_step(cfg, "fp32", False, batch),
                                 DEFAULT: make_step(cfg, precision, cl, batch)},
                                max(2, plan.rounds // 2), max(1, plan.steps // 2))
        # The median for clips/s and speed-up; the best round, the nearest to an idle
        # machine, for the attained FLOP/s against the (best-case) matmul peak.
        out[name] = {**{k: statistics.median(v) for k, v in runs.items()},
                     **{f"{k} best": min(v) for k, v in runs.items()}}
    return out


# -- profile -----------------------------------------------------------------------------------

CATEGORIES = (   # (label, words in an aten op's name); the first that matches takes the op
    ("convolutions", ("conv",)),
    ("LSTM", ("rnn", "lstm")),
    ("batch norm, ReLU, pooling", ("batch_norm", "relu", "threshold", "pool")),
    ("linear head, loss", ("addmm", "linear", "mm", "nll", "softmax", "cross_entropy")),
)


def profile_epoch(plan: Plan, threads: int, precision: str, channels_last: bool) -> dict[str, float]:
    """An epoch of the seed model (train pass, then eval pass, as fit does), in seconds per
    part: the step's ops by category (self CPU time, torch.profiler), the optimizer (AdamW and
    clipping, its record_function ranges), evaluation, the data path (time inside the loader).
    The first plan.profile_batches training batches stand for the train pass, scaled to all
    of its batches (each batch is the same work), after one warm-up batch."""
    from itertools import islice

    from torch.profiler import ProfilerActivity, profile, record_function

    _threads(threads)
    loaders = make_loaders(plan.data, batch_size=plan.batch_size, progress=False)
    cfg = TrainConfig(precision=precision, channels_last=channels_last)
    model = build_model(model_config(SEED_DEFAULT, plan), seed=0)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    step, clip = optimizer.step, nn.utils.clip_grad_norm_

    def timed_step(*a: Any, **k: Any) -> Any:
        with record_function("vidtune.optimizer"):
            return step(*a, **k)

    def timed_clip(*a: Any, **k: Any) -> Any:
        with record_function("vidtune.optimizer"):
            return clip(*a, **k)

    train_one_epoch(model, islice(loaders.train, 1), optimizer, CPU, 1.0, precision=precision)   # warm-up
    optimizer.step = timed_step   # type: ignore[method-assign]
    nn.utils.clip_grad_norm_ = timed_clip   # type: ignore[assignment]
    scale = len(loaders.train) / min(plan.profile_batches, len(loaders.train))
    try:
        train = TimedLoader(islice(loaders.train, plan.profile_batches))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            train_one_epoch(model, train, optimizer, CPU, 1.0, precision=precision)
            train_s = time.perf_counter() - t0
    finally:
        optimizer.step = step   # type: ignore[method-assign]
        nn.utils.clip_grad_norm_ = clip
    val = TimedLoader(loaders.val)
    t0 = time.perf_counter()
    evaluate(model, val, CPU, 10, precision=precision)
    eval_s = time.perf_counter() - t0
    parts = {label: 0.0 for label, _ in CATEGORIES}
    optimizer_s = 0.0
    for ev in prof.key_averages():
        if ev.key == "vidtune.optimizer":
            optimizer_s = ev.cpu_time_total / 1e6
    # Ops inside the optimizer ranges are counted there, not in the categories: profile the
    # ops of the forward and backward only, by excluding the optimizer's own kernels' names.
    for ev in prof.key_averages():
        name = ev.key.lower()
        if not name.startswith("aten::") or "foreach" in name or "_fused_adam" in name:
            continue
        for label, words in CATEGORIES:
            if any(w in name for w in words):
                parts[label] += ev.self_cpu_time_total / 1e6
                break
    # The profiler's own overhead inflates self times: scale the categories into the epoch.
    rest = max(train_s - optimizer_s - train.seconds, 0.0)
    counted = sum(parts.values())
    if counted > rest and counted > 0:
        parts = {k: v * rest / counted for k, v in parts.items()}
    parts["other ops of the step (autograd, casts, copies)"] = max(rest - sum(parts.values()), 0.0)
    parts["optimizer (AdamW, gradient clipping)"] = optimizer_s
    parts = {k: v * scale for k, v in parts.items()}   # the whole train pass
    parts["evaluation (val pass)"] = eval_s - val.seconds
    parts["data path (inside the loaders)"] = train.seconds * scale + val.seconds
    return parts


# -- the run and its section -------------------------------------------------------------------

def measure(plan: Plan, parts: tuple[str, ...]) -> dict[str, Any]:
    """The figures of the named parts, as plain JSON-friendly dicts."""
    before = torch.get_num_threads()
    res: dict[str, Any] = {}
    try:
        if "flops" in parts:
            print("-- flops", file=sys.stderr)
            res["flops"] = {name: flops_per_clip(model_config(p, plan), plan)
                            for name, p in class_params().items()}
        if "peak" in parts:
            print("-- peak", file=sys.stderr)
            res["peak"] = {}
            for n in plan.threads:
                _threads(n)
                res["peak"][str(n)] = {name: matmul_peak(plan.matmul, dtype, plan.matmul_repeats)
                                       for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        if "levers" in parts:
            res["levers"], res["eval"] = {}, {}
            for n in plan.threads:
                print(f"-- levers, {n} thread(s)", file=sys.stderr)
                res["levers"][str(n)] = run_levers(plan, n)
                res["eval"][str(n)] = run_eval_modes(plan, n)
        if "classes" in parts:
            res["classes"] = {}
            for n in plan.threads:
                print(f"-- classes, {n} thread(s)", file=sys.stderr)
                res["classes"][str(n)] = run_classes(plan, n)
        if "profile" in parts:
            res["profile"] = {}
            precision, cl = default_variant()
            for name, (p, c) in ((TODAY, ("fp32", False)), (DEFAULT, (precision, cl))):
                print(f"-- profile, {name}", file=sys.stderr)
                res["profile"][name] = profile_epoch(plan, plan.threads[0], p, c)
        if "compile" in parts:
            n = plan.threads[0]
            print(f"-- torch.compile, {n} thread(s)", file=sys.stderr)
            _threads(n)
            precision, cl = default_variant()
            eager = interleaved({"eager": make_step(model_config(SEED_DEFAULT, plan), precision, cl,
                                                     _batch(plan))}, plan.rounds, plan.steps)["eager"]
            try:
                res["compile"] = {str(n): run_compile(plan, n, eager)}
            except Exception as exc:   # no C++ compiler, an inductor failure: say so, go on
                res["compile"] = {str(n): {"error": f"{type(exc).__name__}: "
                                                    f"{str(exc).splitlines()[0][:200]}"}}
        if "accuracy" in parts:
            res["accuracy"] = run_accuracy(plan)
    finally:
        torch.set_num_threads(before)
    return res


def _ms(s: float) -> str:
    return f"{1000 * s:.0f} ms"


def _g(flops: float) -> str:
    return f"{flops / 1e9:.1f}"


def section(res: dict[str, Any], plan: Plan, when: str) -> str:
    precision, cl = default_variant()
    default_name = f"{precision}{' + channels_last' if cl else ''}"
    units = ", ".join(cpu_bf16_units()) or "none"
    lines = [
        "## Throughput: an epoch against the hardware's limit (`benchmarks/bench_throughput.py`)",
        "",
        *([SMOKE_NOTE, ""] if plan.smoke else []),
        f"- Run: {when}. **The machine was shared** with other sessions' work (2 cores, up to 7 "
        "processes): every comparison below is interleaved in one process, "
        f"{plan.rounds} rounds of {plan.steps} steps (the classes {max(2, plan.rounds // 2)} of "
        f"{max(1, plan.steps // 2)}), medians; absolute times are slower than "
        "on an idle machine, ratios less so.",
        f"- CPU bf16 units (torch.cpu.get_capabilities): {units}; so `--precision auto` is "
        f"**{precision}** here. The new default: {default_name} (the LSTM in fp32 always). "
        "Today's loop: fp32, contiguous weights. Both get the frames as the loader lays them "
        "out (channels-last in memory).",
        f"- Data: {describe_data(plan.data)}; batch {plan.batch_size}; training steps on a batch "
        "in memory (forward, backward, gradient clipping, AdamW).",
        "",
    ]
    flops = res.get("flops", {})
    peak = res.get("peak", {})
    classes = res.get("classes", {})
    if classes:
        lines += ["### Training clips/s by config class (the default space's conv depth x base "
                  "width; LSTM 256)", "",
                  "| class | GFLOP/clip (fwd+bwd) | threads | today clips/s | new clips/s | "
                  "speed-up | attained GFLOP/s (best round), today / new | of the peak in "
                  "its precision, today / new |",
                  "|---|---|---|---|---|---|---|---|"]
        for n, by_class in classes.items():
            for name, t in by_class.items():
                f = flops.get(name, {}).get("total", float("nan"))
                today, new = plan.batch_size / t[TODAY], plan.batch_size / t[DEFAULT]
                pk = peak.get(n, {})
                best_t = plan.batch_size / t.get(f"{TODAY} best", t[TODAY])
                best_n = plan.batch_size / t.get(f"{DEFAULT} best", t[DEFAULT])
                frac_t = f * best_t / pk["fp32"] if pk else float("nan")
                frac_n = f * best_n / pk[precision] if pk else float("nan")
                lines.append(f"| {name}{' (seed)' if name == SEED_CLASS else ''} | {f / 1e9:.2f} | {n} | "
                             f"{today:.1f} | {new:.1f} | {new / today:.2f}x | {_g(f * best_t)} / "
                             f"{_g(f * best_n)} | {100 * frac_t:.0f} % / {100 * frac_n:.0f} % |")
        lines += ["", "Clips/s and speed-up from medians of 2 rounds; the attained FLOP/s from the "
                  "best round. Rows for 2 threads are the noisiest on a shared machine (a step "
                  "needs both cores at once): a ratio below 1 there is another process, not the "
                  "lever. A search trial uses 1 thread (`--cpus-per-trial 1`).", ""]
    if flops:
        seed = flops.get(SEED_CLASS, next(iter(flops.values())))
        lines += [f"FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (fwd "
                  f"{_g(seed['forward'])} + bwd {_g(seed['backward'])} GFLOP per clip for the seed "
                  f"model; convolutions {100 * seed['conv_share']:.0f} % of them, the LSTM "
                  f"{100 * seed['lstm_share']:.0f} %"
                  + ("" if seed.get("counted_lstm") else
                     "; FlopCounterMode has no formula for the fused LSTM op, so its matmuls "
                     "are added by formula, 2 x 4H x (F + H) per frame forward and twice that "
                     "backward") + ").", ""]
    if peak:
        lines += ["### The core's peak: a large matmul in the same precision", "",
                  "| threads | fp32 GFLOP/s | bf16 GFLOP/s |", "|---|---|---|"]
        for n, p in peak.items():
            lines.append(f"| {n} | {_g(p['fp32'])} | {_g(p['bf16'])} |")
        sizes = ", ".join(f"{n} x {n}" for n in plan.matmul)
        lines += ["", f"`torch.mm` of {sizes}, the best of {plan.matmul_repeats} runs each: a "
                  "peak, since other processes only ever slow a run down.", ""]
    levers = res.get("levers", {})
    if levers:
        lines += ["### The levers, seed model (training step, interleaved)", "",
                  "| threads | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]
        for n, t in levers.items():
            base = t[TODAY]
            lines.append(f"| {n} | " + " | ".join(f"{_ms(t[v])} ({base / t[v]:.2f}x)" for v in VARIANTS) + " |")
        lines.append("")
        for n, e in res.get("eval", {}).items():
            lines.append(f"- Evaluation batch, {n} thread(s), new default: no_grad {_ms(e['no_grad'])}, "
                         f"inference_mode {_ms(e['inference_mode'])} "
                         f"({e['no_grad'] / e['inference_mode']:.2f}x).")
        for n, c in res.get("compile", {}).items():
            if "error" in c:
                lines.append(f"- torch.compile, {n} thread(s): failed ({c['error']}).")
            else:
                lines.append(f"- torch.compile, {n} thread(s), new default: compiling took "
                             f"{c['compile_s']:.0f} s; a step {_ms(c['step_s'])} against "
                             f"{_ms(c['eager_step_s'])} eager; break-even after "
                             f"{c['break_even_epochs']:.1f} epochs of this data "
                             f"(a trial trains at most 6).")
        lines.append("")
    prof = res.get("profile", {})
    if prof:
        names = list(next(iter(prof.values())))
        lines += [f"### Where an epoch's time goes (torch.profiler, seed model, {plan.threads[0]} thread)", "",
                  "| part | today (fp32) | new default |", "|---|---|---|"]
        totals = {k: sum(v.values()) for k, v in prof.items()}
        for part in names:
            lines.append(f"| {part} | " + " | ".join(
                f"{prof[k][part]:.2f} s ({100 * prof[k][part] / totals[k]:.0f} %)" for k in (TODAY, DEFAULT)
                if k in prof) + " |")
        lines += ["| epoch | " + " | ".join(f"{totals[k]:.2f} s" for k in (TODAY, DEFAULT) if k in prof) + " |", ""]
    acc = res.get("accuracy")
    if acc:
        t, d = [r["val_acc"] for r in acc[TODAY]], [r["val_acc"] for r in acc[DEFAULT]]
        diff = statistics.mean(d) - statistics.mean(t)
        ok = diff >= -GOAL_ACC_PT / 100
        lines += [f"### Accuracy: val acc after {plan.epochs} epochs, seed model, 1 thread", "",
                  "| seed | fp32 (today) | new default | fp32 epoch | new epoch |", "|---|---|---|---|---|"]
        for s, a, b in zip(plan.seeds, acc[TODAY], acc[DEFAULT], strict=False):
            lines.append(f"| {a.get('seed', s)} | {a['val_acc']:.4f} | {b['val_acc']:.4f} | {a['epoch_s']:.1f} s | "
                         f"{b['epoch_s']:.1f} s |")
        lines += [f"| mean | {statistics.mean(t):.4f} | {statistics.mean(d):.4f} | | |", "",
                  f"New default - fp32: {100 * diff:+.2f} pt (goal: within {GOAL_ACC_PT} pt, or better): "
                  f"{'**PASS**, so bf16 is on by default' if ok else '**FAIL**: bf16 stays a flag'}. "
                  f"The val set is {int(plan.data.num_clips * plan.data.val_fraction)} clips, so one "
                  "clip is 0.5 pt: single seeds move by 1-2.5 pt either way."
                  + (f" These runs' new default: {acc[DEFAULT][0]['variant']}." if "variant" in acc[DEFAULT][0]
                     else ""), ""]
    lines += goals(res, plan)
    return "\n".join(lines)


def goals(res: dict[str, Any], plan: Plan) -> list[str]:
    """The goals of issue 26, each with its figure or why it is owed."""
    precision, _ = default_variant()
    out = ["### Goals", "", "| goal | figure | result |", "|---|---|---|"]
    seed = res.get("classes", {}).get(str(plan.threads[0]), {}).get(SEED_CLASS)
    if seed:
        ratio = seed[TODAY] / seed[DEFAULT]
        out.append(f"| seed model's training clips/s, new default / today, >= {GOAL_SPEEDUP}x | "
                   f"{ratio:.2f}x ({plan.threads[0]} thread) | "
                   f"{'**PASS**' if ratio >= GOAL_SPEEDUP else '**FAIL**'} |")
    acc = res.get("accuracy")
    if acc:
        diff = (statistics.mean(r["val_acc"] for r in acc[DEFAULT])
                - statistics.mean(r["val_acc"] for r in acc[TODAY]))
        out.append(f"| val acc after {plan.epochs} epochs, new default - fp32, mean of "
                   f"{len(acc[TODAY])} seeds, >= -{GOAL_ACC_PT} pt | {100 * diff:+.2f} pt | "
                   f"{'**PASS**' if diff >= -GOAL_ACC_PT / 100 else '**FAIL**'} |")
    flops, peak = res.get("flops", {}).get(SEED_CLASS), res.get("peak", {}).get(str(plan.threads[0]))
    if seed and flops and peak:
        best = flops["total"] * plan.batch_size / seed.get(f"{DEFAULT} best", seed[DEFAULT])
        out.append(f"| attained fraction of the {precision} matmul peak, seed model's training "
                   f"step | {100 * best / peak[precision]:.0f} % ({_g(best)} of "
                   f"{_g(peak[precision])} GFLOP/s) | stated; where the rest goes: the profile "
                   "above |")
    out.append("| `make search` trials in 4m30s, after / before, >= 1.4x | - | **owed**: needs "
               "seeds 0-4 before and after on an idle machine; this one was shared (load 12-28 "
               "on 2 cores) |")
    return out + [""]


def run_throughput_bench(out: str | Path, plan: Plan, parts: tuple[str, ...] = PARTS,
                         json_path: str | Path | None = None) -> str:
    """Measure `parts`, merge them into json_path's earlier figures (if given), write the section."""
    import json

    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"parts {sorted(unknown)} are unknown; known: {', '.join(PARTS)}")
    res: dict[str, Any] = {}
    if json_path is not None and Path(json_path).is_file():
        res = json.loads(Path(json_path).read_text())
    fresh = measure(plan, parts)
    res.update(fresh)
    res.setdefault("when", {})
    for part in fresh:
        res["when"][part] = machine_line()
    if json_path is not None:
        Path(json_path).write_text(json.dumps(res, indent=1))
    when = "; ".join(sorted({v for k, v in res["when"].items() if k in res}))
    body = section(res, plan, when)
    write_section(out, KEY, body)
    return body
