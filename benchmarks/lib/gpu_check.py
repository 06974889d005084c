"""`make gpu-check`: the CUDA path proven and measured in one run of at most 8 minutes on one GPU.

Parts, in order (without a CUDA device, or with --cpu, every part that needs one is skipped
and says so; the run then checks only that the script itself works):
1. The CUDA tests, tests/test_gpu.py (@pytest.mark.gpu), in a pytest subprocess: the data
   path, bf16 autocast against fp32, checkpoints across devices, the memory cap of packed
   trials (a 0.25-GPU trial that needs more than its cap fails alone, naming it), the auto probe, and
   train/evaluate/retrain/export/predict on CUDA.
2. --gpus-per-trial auto's probe of the default space's largest model on the benchmark clips,
   with what the card holds beyond torch's tensors (the CUDA context, core.packing.CONTEXT_MB).
3. The data path's share of a GPU epoch: bench_data's measurement (data_share.py), the seed
   model alone on the GPU. Goal <= 5 %.
4. Packed searches (gpus.py): the seed configuration of the default space as 1, 2, 4 and 8
   trials per GPU on 16x112x112 clips; per packing the aggregate training clips/s, GPU
   utilization, peak memory per trial and the data wait's share of an epoch. Goals: 4 packed
   give >= 3x the clips/s of 1 alone; the GPU is busy >= 80 % of the 4-packed search.

The figures go to the `gpu_check` section of docs/benchmarks.md (part 6 of the benchmarks),
with the device named. The exit status is 1 if anything failed: a test, an errored trial, a
part that raised, or the time budget. Goals are verdicts in the section, not failures.

Time (estimate() below; the section prints the estimate beside what each part took): the
seed model (conv 32-64-128, LSTM 256) costs 12.4 GFLOP per training clip of 16x112x112
(conv and LSTM multiply-adds x 2 x 3 for forward and backward; BatchNorm, ReLU and pooling
add memory traffic, not FLOPs). Small convolutions (3 -> 32 channels) use a GPU poorly, so
the estimate assumes 20 TFLOP/s sustained in bf16 on an H100 (2 % of its dense peak): 1600
training clips/s with the GPU kept busy, half that for one trial alone. The packed searches
then train 41 s in all, plus about 15 s per search to start its trials (101 s); with the
CUDA tests (150 s), the clips' generation (20 ms per clip on a CPU core: 24 s), the probe
(10 s) and the data share (14 s) the run comes to 5.0 minutes. At a third of the assumed
speed it takes 6.8; the script stops short of the 8-minute budget rather than overrun it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.lib.common import Verdict, describe_data, machine_line, write_section
from benchmarks.lib.data_share import DataShare
from benchmarks.lib.gpus import PackedRun
from vidtune.data import DataConfig
from vidtune.trainable.core.config import ModelConfig

KEY = "gpu_check"
BUDGET_S = 480.0                   # the whole run: 8 minutes on one GPU
GOAL_PACKED_RATIO = 3.0            # 4 packed >= 3x 1 alone, in aggregate training clips/s
GOAL_UTIL = 80.0                   # GPU busy >= 80 % of the 4-packed search
ASSUMED_TFLOPS = 20.0              # sustained bf16 on an H100 for this model (see above)
GPU_TESTS_S = 150.0                # estimate: six tests, two of them real Ray searches
TRIAL_START_S = 15.0               # estimate per packed search: worker start, CUDA, cuDNN choice
CLIP_GEN_S = 0.02                  # one 16x112x112 synthetic clip (17.6 ms measured on a CPU core)
PROBE_S = 10.0                     # the probe's child process: start, import torch, two steps


@dataclass(frozen=True)
class GpuPlan:
    data: DataConfig = field(default_factory=lambda: DataConfig(
        num_clips=1200, frames=16, height=112, width=112))      # 960 train / 240 val clips
    packings: tuple[int, ...] = (1, 2, 4, 8)
    epochs: int = 4                # per trial: epoch 1 warms up, 2-4 are measured
    data_repeats: int = 3
    batch_size: int = 32
    budget_s: float = BUDGET_S


def train_gflop_per_clip(cfg: ModelConfig, frames: int, height: int, width: int) -> float:
    """Forward and backward FLOPs of one training clip: 2 x 3 x the conv and LSTM multiply-adds."""
    macs, h, w, c_in = 0, height, width, cfg.in_channels
    for c_out in cfg.conv_widths:          # Conv2d 3x3 at (h, w), then MaxPool2d(2)
        macs += h * w * c_out * c_in * 9
        h, w, c_in = h // 2, w // 2, c_out
    macs *= frames
    size = c_in * cfg.spatial_pool**2      # the LSTM's input per frame
    for _ in range(cfg.lstm_layers):
        macs += frames * 4 * cfg.lstm_hidden * (size + cfg.lstm_hidden)
        size = cfg.lstm_hidden
    return 2 * 3 * macs / 1e9


def estimate(plan: GpuPlan, model: ModelConfig) -> dict[str, float]:
    """Seconds per part on an H100, from FLOPs and the constants above."""
    d = plan.data
    rate = ASSUMED_TFLOPS * 1e3 / train_gflop_per_clip(model, d.frames, d.height, d.width)
    val = round(d.num_clips * d.val_fraction)
    per_epoch = d.num_clips - val + val / 3          # a val clip is a forward pass: a third
    packed = sum(TRIAL_START_S + k * plan.epochs * per_epoch / (rate / 2 if k == 1 else rate)
                 for k in plan.packings)
    return {"CUDA tests": GPU_TESTS_S, "data cache": d.num_clips * CLIP_GEN_S, "probe": PROBE_S,
            "data share": (1 + 2 * plan.data_repeats) * per_epoch / (rate / 2) + 5.0,
            "packed searches": packed}


@dataclass
class TestResult:
    name: str
    outcome: str          # passed, failed, error, skipped
    seconds: float
    message: str = ""


def read_junit(path: Path) -> list[TestResult]:
    """pytest's --junitxml report as one TestResult per test."""
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (node.get("message") or "").strip().splitlines()[0:1]
                message = message[0] if message else ""
                break
        out.append(TestResult(case.get("name", "?"), outcome, float(case.get("time", 0)), message))
    return out


def run_gpu_tests(tests: Path, cpu_mode: bool, timeout: float) -> tuple[list[TestResult], str]:
    """pytest -m gpu on `tests` in a subprocess: (results, the last lines it printed)."""
    env = dict(os.environ)
    if cpu_mode:
        env["CUDA_VISIBLE_DEVICES"] = ""   # the tests see no GPU, as on a machine without one
    with tempfile.TemporaryDirectory(prefix="vidtune-gpu-tests-") as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", str(tests), "-m", "gpu", "-q", "-rs",
               "-p", "no:cacheprovider", f"--junitxml={xml}"]
        try:
            done = subprocess.run(cmd, cwd=tests.parents[1] if tests.is_file() else tests.parent,
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return [TestResult("(the whole run)", "error", timeout,
                               f"timed out after {timeout:.0f} s")], str(exc.stdout or "")[-2000:]
        printed = (done.stdout + done.stderr).strip()
        if not xml.is_file():
            return [TestResult("(pytest)", "error", 0.0, f"exit {done.returncode}")], printed[-2000:]
        results = read_junit(xml)
        if not results:
            results = [TestResult("(pytest)", "error", 0.0, "no test was collected")]
        return results, printed[-2000:]


@dataclass
class GpuCheck:
    """Everything one run found; render() turns it into the section."""

    device: str
    cpu_mode: bool
    plan: GpuPlan
    estimate: dict[str, float]
    took: dict[str, float] = field(default_factory=dict)
    tests: list[TestResult] = field(default_factory=list)
    probe: str = ""                        # the probe's line, or why it was skipped
    probe_context_mb: float | None = None
    share: DataShare | None = None
    packed: list[PackedRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)    # what was not run, and why
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def by_k(self, k: int) -> PackedRun | None:
        return next((r for r in self.packed if r.per_gpu == k), None)

    def packed_ratio(self) -> float | None:
        one, four = self.by_k(1), self.by_k(4)
        if one is None or four is None or not one.clips_per_s:
            return None
        return four.clips_per_s / one.clips_per_s


def goal_rows(c: GpuCheck) -> list[str]:
    skipped = "skipped: no CUDA device"
    ratio, four = c.packed_ratio(), c.by_k(4)
    rows = []
    if ratio is None:
        why = skipped if not c.packed else "not measured"
        rows.append(f"| aggregate training clips/s, 4 trials per GPU / 1 alone | {why} | "
                    f">= {GOAL_PACKED_RATIO:g}x | - |")
    else:
        rows.append(f"| aggregate training clips/s, 4 trials per GPU / 1 alone | {ratio:.2f}x | "
                    f">= {GOAL_PACKED_RATIO:g}x | {Verdict(ratio >= GOAL_PACKED_RATIO)} |")
    if four is None or four.util is None:
        why = skipped if not c.packed else (four.util_source if four else "not measured")
        rows.append(f"| GPU busy during the 4-per-GPU search | {why} | >= {GOAL_UTIL:g} % | - |")
    else:
        rows.append(f"| GPU busy during the 4-per-GPU search | {four.util:.0f} % | "
                    f">= {GOAL_UTIL:g} % | {Verdict(four.util >= GOAL_UTIL)} |")
    if c.share is None:
        rows.append(f"| data path's share of a GPU epoch (one trial alone) | {skipped} | <= 5 % | - |")
    else:
        rows.append(f"| data path's share of a GPU epoch (one trial alone) | "
                    f"{100 * c.share.judged_share:.1f} % | <= 5 % | {c.share.verdict} |")
    return rows


def render(c: GpuCheck) -> str:
    """The gpu_check section of the markdown file."""
    d = c.plan.data
    took = ", ".join(f"{k} {v:.0f} s" for k, v in c.took.items())
    planned = ", ".join(f"{k} {v:.0f} s" for k, v in c.estimate.items())
    lines = [
        "## GPU check (`make gpu-check`, issue 15): part 6, packed trials on a real GPU",
        "",
        *(["*CPU mode (no CUDA device, or --cpu): every GPU part is skipped; the run shows only "
           "that the script works.*", ""] if c.device == "cpu" else []),
        f"- Run: {machine_line()}; device {c.device}.",
        f"- Result: {'**all checks passed**' if c.ok else '**FAILED**: ' + '; '.join(c.failures)}.",
        f"- Wall time: {sum(c.took.values()):.0f} s of a {c.plan.budget_s:.0f} s budget"
        + (f"; {took}." if took else "."),
        f"- Estimated for an H100 from FLOPs (`benchmarks/lib/gpu_check.py`): "
        f"{sum(c.estimate.values()):.0f} s; {planned}.",
        *([f"- Skipped: {'; '.join(c.skipped)}."] if c.skipped else []),
        "",
        "| figure | measured | goal | result |",
        "|---|---|---|---|",
        *goal_rows(c),
        "",
        "### CUDA tests (`tests/test_gpu.py`, `pytest -m gpu`)",
        "",
        "| test | outcome | seconds |",
        "|---|---|---|",
        *[f"| {t.name} | {t.outcome}{': ' + t.message if t.message else ''} | {t.seconds:.1f} |"
          for t in c.tests],
        "",
        "### `--gpus-per-trial auto` probe",
        "",
        c.probe or "skipped.",
        "",
    ]
    if c.share is not None:
        from benchmarks.lib.data_share import data_share_rows

        lines += ["### Data path's share of a GPU epoch", "",
                  f"bench_data's measurement on {c.share.device}: the seed model alone, "
                  f"{describe_data(d)}, {c.share.train_clips} train / {c.share.val_clips} val clips, "
                  f"batch {c.share.batch_size}, median of {c.share.repeats} repeats. The in-memory "
                  "epoch is fed float batches already on the GPU.", "",
                  "| measure | value |", "|---|---|", *data_share_rows(c.share), ""]
    lines += ["### Packed searches", ""]
    if not c.packed:
        lines.append("skipped: no CUDA device.")
    else:
        lines += [
            f"The `default` space's seed configuration (conv 32-64-128, LSTM 256) in every trial, "
            f"{c.plan.epochs} epochs each, {describe_data(d)}, batch {c.plan.batch_size}, "
            "run_repeats (no searcher, no early stopping). Clips/s: each trial's train clips per "
            "second of its epochs 2+ (train and val pass), summed over the trials. GPU busy: "
            f"{c.packed[0].util_source}, mean of the samples taken while every trial was past its "
            "first epoch. Data wait: the loop's wait for batches over its epoch time (epochs 2+, "
            "median).",
            "",
            "| trials per GPU | gpus_per_trial | clips/s, all trials | per trial | GPU busy | "
            "peak memory per trial (max) | memory cap | data wait | at once | errors | wall |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in c.packed:
            util = f"{r.util:.0f} % ({r.util_samples} samples)" if r.util is not None else "-"
            per = ", ".join(f"{x:.0f}" for x in r.alone_clips_per_s)
            peak = f"{max(r.peak_mb):.0f} MiB" if r.peak_mb else "-"
            cap = f"{r.cap_mb:.0f} MiB" if r.cap_mb else "none"
            lines.append(f"| {r.per_gpu} | {r.share:g} | {r.clips_per_s:.0f} | {per} | {util} | "
                         f"{peak} | {cap} | {100 * r.data_share:.1f} % | {r.overlap} | {r.errors} | "
                         f"{r.wall_s:.0f} s |")
    return "\n".join(lines)


def run_gpu_check(out: str | Path, tests: str | Path, cpu_mode: bool = False,
                  plan: GpuPlan | None = None, results_dir: str | None = None) -> GpuCheck:
    """Run every part the machine allows, write the section into `out` after each part, print
    the section; returns what was found (GpuCheck.ok: nothing failed)."""
    plan = plan or GpuPlan()
    cuda = torch.cuda.is_available() and not cpu_mode
    model = ModelConfig()              # the default space's seed configuration
    check = GpuCheck(device=torch.cuda.get_device_name(0) if cuda else "cpu", cpu_mode=cpu_mode,
                     plan=plan, estimate=estimate(plan, model))
    started = time.perf_counter()

    def left() -> float:
        return plan.budget_s - (time.perf_counter() - started)

    def part(name: str, fn) -> None:
        print(f"-- {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - recorded as a failure; the other parts still run
            first = str(exc).splitlines()[0] if str(exc) else ""
            check.failures.append(f"{name}: {type(exc).__name__}: {first}")
        finally:
            check.took[name] = check.took.get(name, 0.0) + time.perf_counter() - t0
            write_section(out, KEY, render(check))

    def gpu_tests() -> None:
        results, printed = run_gpu_tests(Path(tests), cpu_mode or not cuda, timeout=min(300.0, left()))
        check.tests = results
        print(printed, file=sys.stderr)
        bad = [t.name for t in results if t.outcome in ("failed", "error")]
        if bad:
            check.failures.append(f"CUDA tests failed: {', '.join(bad)}")
        skipped = [t for t in results if t.outcome == "skipped"]
        if skipped:
            check.skipped.append(f"{len(skipped)} CUDA tests: {skipped[0].message or 'no CUDA'}")

    part("CUDA tests", gpu_tests)
    if not cuda:
        check.skipped += ["the auto probe, the data share and the packed searches (no CUDA device)"]
        for what in ("auto probe", "data share", "packed searches"):
            print(f"skipped: {what}: no CUDA device", file=sys.stderr)
        write_section(out, KEY, render(check))
        print(render(check))
        return check

    from benchmarks.lib.data_share import measure_data_share
    from benchmarks.lib.gpus import packed_run
    from vidtune.data import load_arrays, make_loaders
    from vidtune.search_spaces import get_space
    from vidtune.trainable.core.packing import CONTEXT_MB, per_gpu, probe_memory, share_of
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.driver import shutdown

    part("data cache", lambda: load_arrays(plan.data, progress=True))

    def probe() -> None:
        cfg = SearchConfig(space="default", batch_size=plan.batch_size, data=plan.data)
        p = probe_memory(cfg)
        k = per_gpu(p.peak_mb, p.total_mb)
        check.probe_context_mb = p.beyond_torch_mb
        check.probe = (f"The `default` space's largest model ({p.params}, batch {p.batch_size}) on "
                       f"{describe_data(plan.data)}: peak {p.peak_mb:.0f} MiB reserved by torch "
                       f"({p.allocated_mb:.0f} MiB allocated) of {p.total_mb:.0f} MiB on {p.gpu_name}. "
                       f"Beyond torch's memory the card held {p.beyond_torch_mb:.0f} MiB (the probe's "
                       f"CUDA context; core.packing assumes {CONTEXT_MB:.0f} MiB). `auto` packs "
                       f"**{k}** trials per GPU (gpus_per_trial {share_of(k) if k else 0:g}).")

    part("probe", probe)

    def data_share() -> None:
        check.share = measure_data_share(plan.data, model, plan.batch_size, plan.data_repeats,
                                         progress=True)
        torch.cuda.empty_cache()   # the in-memory batches: give their memory back to the trials

    part("data share", data_share)

    def packed() -> None:
        params = dict(get_space("default").default)
        train_clips = len(make_loaders(plan.data, batch_size=plan.batch_size, progress=False).train.indices)
        cpus = max(1, (os.cpu_count() or 1) // max(plan.packings))
        scratch = tempfile.TemporaryDirectory(prefix="vidtune-gpu-check-")
        root = results_dir or scratch.name
        shutdown()
        last: tuple[int, float] | None = None
        try:
            for k in plan.packings:
                if last is not None:   # the last search's wall, scaled by the trials: too long?
                    predicted = last[1] * k / last[0]
                    if predicted > left():
                        check.failures.append(f"{k} trials per GPU not run: predicted {predicted:.0f} s, "
                                              f"{left():.0f} s of the budget left")
                        continue
                run = packed_run(k, root, plan.data, params, plan.epochs, cpus, train_clips)
                check.packed.append(run)
                if run.errors:
                    check.failures.append(f"{run.errors} of {k} packed trials errored")
                last = (k, run.wall_s)
                write_section(out, KEY, render(check))
        finally:
            shutdown()
            scratch.cleanup()

    part("packed searches", packed)
    if left() < 0:
        check.failures.append(f"over the {plan.budget_s:.0f} s budget by {-left():.0f} s")
    write_section(out, KEY, render(check))
    print(render(check))
    return check
