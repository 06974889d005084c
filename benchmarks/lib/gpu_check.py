"""`make gpu-check`: the CUDA path proven and measured in one run of at most 8 minutes on one GPU.

It runs on the lent device machine as it is: python3 with torch (2.11 there, 2.14 here),
torchvision, numpy, pandas, matplotlib, pytest and nvidia-ml-py, and no Ray, no PyAV, no
package registry. Nothing here imports Ray or PyAV; optuna (the search spaces need it)
travels as a wheel (benchmarks/gpu_check.py puts it on the path; docs/benchmarks.md part 6).

Parts, in order:
0. Preflight: torch must see the GPU that `nvidia-smi -L` lists; if it cannot, the run fails
   at once (one line) unless --cpu. The card is named with its UUID and PCI address.
1. The CUDA tests, tests/test_gpu.py (@pytest.mark.gpu), in a pytest subprocess; those that
   need Ray or PyAV skip themselves there, saying so.
2. Dtypes: under the loop's autocast on the GPU, what the CNN, the LSTM and the head compute
   in, and whether the gradients are finite (the LSTM must not run in float16: there is no
   GradScaler).
3. --gpus-per-trial auto's probe of the default space's largest model on the benchmark clips,
   with what the card holds beyond torch's tensors (the CUDA context; core.packing assumes
   CONTEXT_MB).
4. The data path's share of a GPU epoch: bench_data's measurement (data_share.py), the seed
   model alone on the GPU. Goal <= 5 %.
5. Packed trials without Ray (packed.py): the seed configuration of the default space as 1,
   2, 4 and 8 plain processes on the GPU, each running core.trial.run_trial with its cap as
   a Ray worker would; per packing the summed training clips/s, NVML utilization, each
   trial's peak memory against its cap and the card's peak. Goals: 4 packed give >= 3x the
   clips/s of 1 alone; the GPU is busy >= 80 % of the 4-packed run.

With --cpu every part runs on the CPU at smoke sizes (the probe needs CUDA and is skipped):
the run then shows that the script, its imports and its processes work, nothing more, and
`--fold` refuses it.

Everything goes under the output folder (--out, default $OUT): gpu_check.md (the section),
gpu_check.json (every figure), gpu_check.log, gpu-packed.png; each is rewritten after every
part, so a run stopped at any point keeps what it measured. `benchmarks/gpu_check.py --fold DIR`
then writes the section into docs/benchmarks.md (part 6) and copies the figure beside it.
The exit status is 1 if anything failed: the preflight, a test, an errored trial, a part that
raised, or the time budget. Goals are verdicts in the section, not failures.

Time (estimate() below; the section prints the estimate beside what each part took): the
seed model (conv 32-64-128, LSTM 256) costs 12.4 GFLOP per training clip of 16x112x112
(conv and LSTM multiply-adds x 2 x 3 for forward and backward; BatchNorm, ReLU and pooling
add memory traffic, not FLOPs). Small convolutions (3 -> 32 channels) use a GPU poorly, so
the estimate assumes 20 TFLOP/s sustained in bf16 on an H100 or H200 (2 % of its dense
peak): 1600 training clips/s with the GPU kept busy, half that for one trial alone. The
packed runs then train 41 s in all, plus about 10 s per packing for its processes to start
(import torch, the CUDA context, cuDNN's choice: paid once per packing, side by side, not
once per trial); with the CUDA tests (90 s), the clips' generation (20 ms per clip on a CPU
core: 24 s), the probe (10 s) and the data share (14 s) the run comes to 3.7 minutes (219 s).
At a third of the assumed speed it takes 5.3 (319 s); the script stops short of the 8-minute
budget rather than overrun it (packed.predict_wall skips a packing that would not fit, and
an alarm stops whatever runs at the budget).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.lib.common import (
    Verdict,
    describe_data,
    describe_model,
    machine_line,
    write_section,
)
from benchmarks.lib.data_share import DataShare
from benchmarks.lib.gpus import PackedRun
from vidtune.data import DataConfig
from vidtune.trainable.core.config import ModelConfig

KEY = "gpu_check"
BUDGET_S = 480.0                   # the whole run: 8 minutes on one GPU
RESERVE_S = 20.0                   # kept back at the end: the last writes, the figure
GOAL_PACKED_RATIO = 3.0            # 4 packed >= 3x 1 alone, in aggregate training clips/s
GOAL_UTIL = 80.0                   # GPU busy >= 80 % of the 4-packed run
ASSUMED_TFLOPS = 20.0              # sustained bf16 on an H100/H200 for this model (see above)
GPU_TESTS_S = 90.0                 # estimate: the CUDA tests that need no Ray
TRIAL_START_S = 10.0               # estimate per packing: spawn, import torch, CUDA, cuDNN choice
CLIP_GEN_S = 0.02                  # one 16x112x112 synthetic clip (17.6 ms measured on a CPU core)
PROBE_S = 10.0                     # the probe's child process: start, import torch, two steps
FILES = ("gpu_check.md", "gpu_check.json", "gpu_check.log", "gpu-packed.png")
PARTS = ("CUDA tests", "dtypes", "data cache", "probe", "data share", "packed trials")


@dataclass(frozen=True)
class GpuPlan:
    data: DataConfig = field(default_factory=lambda: DataConfig(
        num_clips=1200, frames=16, height=112, width=112))      # 960 train / 240 val clips
    packings: tuple[int, ...] = (1, 2, 4, 8)
    epochs: int = 4                # per trial: epoch 1 warms up, 2-4 are measured
    data_repeats: int = 3
    batch_size: int = 32
    budget_s: float = BUDGET_S
    space: str = "default"         # the packed trials train its seed configuration
    model: ModelConfig = field(default_factory=ModelConfig)   # the dtypes' and data share's model

    @classmethod
    def smoke(cls, cache_dir: str | None = None) -> GpuPlan:
        """--cpu: every part at sizes a CPU runs in seconds (the `tiny` space's seed model);
        the figures mean nothing."""
        return cls(data=DataConfig(num_clips=80, frames=4, height=16, width=16, noise=0.2,
                                   cache_dir=cache_dir), packings=(1, 2), epochs=2,
                   data_repeats=1, batch_size=16, space="tiny",
                   model=ModelConfig(conv_widths=(8, 16), lstm_hidden=32, spatial_pool=2))


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
    """Seconds per part on an H100/H200, from FLOPs and the constants above."""
    d = plan.data
    rate = ASSUMED_TFLOPS * 1e3 / train_gflop_per_clip(model, d.frames, d.height, d.width)
    val = round(d.num_clips * d.val_fraction)
    per_epoch = d.num_clips - val + val / 3          # a val clip is a forward pass: a third
    packed = sum(TRIAL_START_S + k * plan.epochs * per_epoch / (rate / 2 if k == 1 else rate)
                 for k in plan.packings)
    return {"CUDA tests": GPU_TESTS_S, "data cache": d.num_clips * CLIP_GEN_S, "probe": PROBE_S,
            "data share": (1 + 2 * plan.data_repeats) * per_epoch / (rate / 2) + 5.0,
            "packed trials": packed}


def nvidia_smi_gpus() -> list[str]:
    """The lines of `nvidia-smi -L` ("GPU 0: NVIDIA H200 (UUID: GPU-...)"); [] without it."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("GPU ")]


def preflight_error(cuda: bool, smi_gpus: list[str], cpu_mode: bool) -> str | None:
    """Why the check cannot run, in one line naming the fix; None when it can."""
    if cpu_mode or cuda:
        return None
    cuda_build = torch.version.cuda or "none (a CPU-only build)"
    if smi_gpus:
        return (f"nvidia-smi lists {len(smi_gpus)} GPU(s) ({smi_gpus[0]}), but torch "
                f"{torch.__version__} (CUDA {cuda_build}) cannot use them: "
                "torch.cuda.is_available() is False. Fix the torch build or the driver (or "
                "CUDA_VISIBLE_DEVICES), or pass --cpu to check only that the script runs")
    return (f"torch {torch.__version__} (CUDA {cuda_build}) sees no CUDA device and nvidia-smi "
            "lists none; gpu-check measures a GPU: run it on one, or pass --cpu to check only "
            "that the script runs")


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
    """pytest -m gpu on `tests` in a subprocess: (results, what it printed)."""
    env = dict(os.environ)
    if cpu_mode:
        env["CUDA_VISIBLE_DEVICES"] = ""   # the tests see no GPU, as on a machine without one
    with tempfile.TemporaryDirectory(prefix="vidtune-gpu-tests-") as tmp:
        xml = Path(tmp) / "junit.xml"
        # -P: the working folder is not put first on the path, where the checkout's own
        # vidtune/ (the public API alone) would shadow the source tree's shim.
        cmd = [sys.executable, "-P", "-m", "pytest", str(tests), "-m", "gpu", "-q", "-rs",
               "-p", "no:cacheprovider", f"--junitxml={xml}"]
        try:
            done = subprocess.run(cmd, cwd=tests.parents[1] if tests.is_file() else tests.parent,
                                  env=env, capture_output=True, text=True, timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired as exc:
            printed = exc.stdout.decode() if isinstance(exc.stdout, bytes) else str(exc.stdout or "")
            return [TestResult("(the whole run)", "error", timeout,
                               f"timed out after {timeout:.0f} s")], printed
        printed = (done.stdout + done.stderr).strip()
        if not xml.is_file():
            return [TestResult("(pytest)", "error", 0.0, f"exit {done.returncode}")], printed
        results = read_junit(xml)
        if not results:
            results = [TestResult("(pytest)", "error", 0.0, "no test was collected")]
        return results, printed


def dtype_report(device: torch.device, data: DataConfig, model_cfg: ModelConfig,
                 batch: int = 4) -> dict[str, str]:
    """What the seed model computes in under the training loop's autocast on `device`: the
    dtype of the CNN's features, of what goes into and comes out of the LSTM, of the logits,
    and whether a backward pass gives finite gradients (forward hooks, one real step)."""
    from vidtune.trainable.core import loop
    from vidtune.trainable.core.model import build_model

    model = build_model(model_cfg, seed=0).to(device).train()
    seen: dict[str, str] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(module: Any, inputs: Any, output: Any) -> None:
            first = output[0] if isinstance(output, tuple) else output
            if name == "lstm":
                seen["lstm input"] = str(inputs[0].dtype).removeprefix("torch.")
            seen[name] = str(first.dtype).removeprefix("torch.")
        return record

    handles = [getattr(model, n).register_forward_hook(hook(n)) for n in ("cnn", "lstm", "head")]
    clips = torch.rand(batch, data.frames, 3, data.height, data.width, device=device)  # (B, T, 3, H, W)
    labels = torch.randint(0, model.cfg.num_classes, (batch,), device=device)
    # The loop's own autocast (loop._autocast: private, so a fallback if it moves).
    autocast = getattr(loop, "_autocast", None) or (
        lambda d: torch.autocast(d.type, dtype=torch.bfloat16, enabled=d.type == "cuda"))
    try:
        with autocast(device):
            loss = torch.nn.functional.cross_entropy(model(clips), labels)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    seen["lstm weights"] = str(model.lstm.weight_ih_l0.dtype).removeprefix("torch.")
    seen["gradients finite"] = str(all(bool(torch.isfinite(g).all()) for g in grads))
    return seen


@dataclass
class GpuCheck:
    """Everything one run found; render() turns it into the section."""

    device: str
    cpu_mode: bool
    plan: GpuPlan
    estimate: dict[str, float]
    gpu: dict[str, str] = field(default_factory=dict)     # name, UUID, PCI, nvidia-smi -L, versions
    took: dict[str, float] = field(default_factory=dict)
    tests: list[TestResult] = field(default_factory=list)
    dtypes: dict[str, str] = field(default_factory=dict)
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
    skipped = "skipped: no CUDA device (--cpu)" if c.cpu_mode else "not measured"
    ratio, four = c.packed_ratio(), c.by_k(4)
    rows = []
    if ratio is None or c.cpu_mode:
        rows.append(f"| aggregate training clips/s, 4 trials per GPU / 1 alone | {skipped} | "
                    f">= {GOAL_PACKED_RATIO:g}x | - |")
    else:
        rows.append(f"| aggregate training clips/s, 4 trials per GPU / 1 alone | {ratio:.2f}x | "
                    f">= {GOAL_PACKED_RATIO:g}x | {Verdict(ratio >= GOAL_PACKED_RATIO)} |")
    if four is None or four.util is None or c.cpu_mode:
        why = skipped if c.cpu_mode or four is None else four.util_source
        rows.append(f"| GPU busy during the 4-per-GPU run | {why} | >= {GOAL_UTIL:g} % | - |")
    else:
        rows.append(f"| GPU busy during the 4-per-GPU run | {four.util:.0f} % | "
                    f">= {GOAL_UTIL:g} % | {Verdict(four.util >= GOAL_UTIL)} |")
    if c.share is None or c.cpu_mode:
        rows.append(f"| data path's share of a GPU epoch (one trial alone) | {skipped} | <= 5 % | - |")
    else:
        rows.append(f"| data path's share of a GPU epoch (one trial alone) | "
                    f"{100 * c.share.judged_share:.1f} % | <= 5 % | {c.share.verdict} |")
    lstm = c.dtypes.get("lstm")
    if lstm is None or c.cpu_mode:
        rows.append(f"| the LSTM's dtype under the loop's autocast | {lstm or 'not measured'} "
                    "(CPU: no autocast) | not float16 (no GradScaler) | - |")
    else:
        rows.append(f"| the LSTM's dtype under the loop's autocast | {lstm} | not float16 "
                    f"(no GradScaler) | {Verdict(lstm != 'float16')} |")
    return rows


def render(c: GpuCheck) -> str:
    """The gpu_check section of the markdown file."""
    d = c.plan.data
    took = ", ".join(f"{k} {v:.0f} s" for k, v in c.took.items())
    planned = ", ".join(f"{k} {v:.0f} s" for k, v in c.estimate.items())
    card = "; ".join(f"{k} {v}" for k, v in c.gpu.items())
    lines = [
        "## GPU check (`make gpu-check`, issues 15 and 23): part 6, packed trials on a real GPU",
        "",
        *(["*CPU mode (--cpu): every part ran on the CPU at smoke sizes, the probe skipped; the "
           "run shows only that the script, its imports and its processes work.*", ""]
          if c.cpu_mode else []),
        f"- Run: {machine_line()}; device {c.device}.",
        *([f"- GPU: {card}."] if card else []),
        f"- Result: {'**all checks passed**' if c.ok else '**FAILED**: ' + '; '.join(c.failures)}.",
        f"- Wall time: {sum(c.took.values()):.0f} s of a {c.plan.budget_s:.0f} s budget"
        + (f"; {took}." if took else "."),
        f"- Estimated for an H100/H200 from FLOPs (`benchmarks/lib/gpu_check.py`): "
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
        f"### Dtypes under the loop's autocast ({describe_model(c.plan.model)}, one training step)",
        "",
        *(["| tensor | dtype |", "|---|---|", *[f"| {k} | {v} |" for k, v in c.dtypes.items()]]
          if c.dtypes else ["not measured."]),
        "",
        "### `--gpus-per-trial auto` probe",
        "",
        c.probe or "skipped.",
        "",
    ]
    if c.share is not None:
        from benchmarks.lib.data_share import data_share_rows

        lines += ["### Data path's share of an epoch", "",
                  f"bench_data's measurement on {c.share.device}: {describe_model(c.plan.model)} alone, "
                  f"{describe_data(d)}, {c.share.train_clips} train / {c.share.val_clips} val clips, "
                  f"batch {c.share.batch_size}, median of {c.share.repeats} repeats. The in-memory "
                  "epoch is fed float batches already on the device.", "",
                  "| measure | value |", "|---|---|", *data_share_rows(c.share), ""]
    lines += ["### Packed trials (plain processes, no Ray)", ""]
    if not c.packed:
        lines.append("not run.")
    else:
        lines += [
            f"The `{c.plan.space}` space's seed configuration ({describe_model(c.plan.model)}) in every trial, "
            f"{c.plan.epochs} epochs each, {describe_data(d)}, batch {c.plan.batch_size}. Each "
            "trial is a process of its own running core.trial.run_trial after limit_resources, as "
            "a Ray worker does (threads, and a memory cap of its share less its CUDA context). "
            "Clips/s: each trial's train clips per second of its epochs 2+ (train and val pass), "
            f"summed. GPU busy: {c.packed[0].util_source}, mean of the samples taken while every "
            "trial was past its first epoch. Peak reserved: torch's reserve, which the cap "
            "limits; card peak: NVML's memory in use, the contexts included. Start-up: launch "
            "to the last trial's first batch.",
            "",
            "![clips/s and memory per packing](gpu-packed.png)",
            "",
            "| trials per GPU | gpus_per_trial | clips/s, all trials | per trial | GPU busy | "
            "peak allocated per trial (max) | peak reserved per trial (max) | memory cap | "
            "card peak | data wait | at once | start-up | errors | wall |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in c.packed:
            util = f"{r.util:.0f} % ({r.util_samples} samples)" if r.util is not None else "-"
            per = ", ".join(f"{x:.0f}" for x in r.alone_clips_per_s)
            peak = f"{max(r.peak_mb):.0f} MiB" if r.peak_mb else "-"
            reserved = f"{max(r.reserved_mb):.0f} MiB" if r.reserved_mb else "-"
            cap = f"{r.cap_mb:.0f} MiB" if r.cap_mb else "none"
            card_peak = f"{r.card_peak_mb:.0f} MiB" if r.card_peak_mb else "-"
            stopped = f" ({r.stopped} stopped at the budget)" if r.stopped else ""
            lines.append(f"| {r.per_gpu} | {r.share:g} | {r.clips_per_s:.0f} | {per} | {util} | "
                         f"{peak} | {reserved} | {cap} | {card_peak} | {100 * r.data_share:.1f} % | "
                         f"{r.overlap} | {r.start_up_s:.0f} s | {r.errors}{stopped} | {r.wall_s:.0f} s |")
    return "\n".join(lines)


def _plain(x: Any) -> Any:
    """json.dumps' default: dataclasses as dicts (properties of DataShare included)."""
    if is_dataclass(x) and not isinstance(x, type):
        out = asdict(x)
        if isinstance(x, DataShare):
            out.update(share=x.share, in_loader_share=x.in_loader_share, judged_share=x.judged_share)
        return out
    return str(x)


def write_outputs(out_dir: Path, check: GpuCheck) -> None:
    """The section, the figures as JSON and the figure: rewritten after every part."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.md").write_text(render(check) + "\n")
    data = {"ok": check.ok, **{k: v for k, v in check.__dict__.items()}}
    (out_dir / "gpu_check.json").write_text(json.dumps(data, default=_plain, indent=1))
    if check.packed:
        try:
            plot_packed(check.packed, out_dir / "gpu-packed.png")
        except Exception as exc:  # noqa: BLE001 - a figure must not lose the figures
            print(f"the figure failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def plot_packed(runs: list[PackedRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    ks = [r.per_gpu for r in runs]
    left.bar([str(k) for k in ks], [r.clips_per_s for r in runs], color="tab:blue")
    left.set_xlabel("trials per GPU")
    left.set_ylabel("training clips/s, all trials")
    util = left.twinx()
    util.plot([str(k) for k in ks], [r.util if r.util is not None else float("nan") for r in runs],
              "o-", color="tab:orange")
    util.set_ylabel("GPU busy (%)")
    util.set_ylim(0, 105)
    for i, r in enumerate(runs):
        peaks = r.reserved_mb or r.peak_mb
        right.scatter([i] * len(peaks), [p / 1024 for p in peaks], color="tab:blue", s=12,
                      label="peak reserved per trial" if i == 0 else None)
        if r.cap_mb:
            right.hlines(r.cap_mb / 1024, i - 0.3, i + 0.3, color="tab:red",
                         label="cap" if i == 0 or not runs[0].cap_mb else None)
    right.set_xticks(range(len(runs)), [str(k) for k in ks])
    right.set_xlabel("trials per GPU")
    right.set_ylabel("GiB")
    right.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class BudgetExceeded(Exception):
    """The whole run's time is up (SIGALRM): what it measured so far is kept."""


def gpu_identity() -> dict[str, str]:
    """The card as torch, nvidia-smi and the versions name it."""
    from vidtune.trainable.core.trial import physical_gpu

    props = torch.cuda.get_device_properties(0)
    uuid, pci = physical_gpu(props)
    return {"name": props.name, "UUID": uuid, "PCI": pci,
            "memory": f"{props.total_memory / 1024**2:.0f} MiB",
            "torch": f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version()})"}


def run_gpu_check(out_dir: str | Path, tests: str | Path, cpu_mode: bool = False,
                  plan: GpuPlan | None = None, parts: tuple[str, ...] = PARTS,
                  log: Callable[[str], None] | None = None) -> GpuCheck:
    """Run every part the machine allows (`parts`: a subset, for tests), writing the outputs
    after each; returns what was found (GpuCheck.ok: nothing failed). Raises SystemExit(1)
    with a one-line message when the preflight fails."""
    out_dir = Path(out_dir)
    plan = plan or (GpuPlan.smoke(str(out_dir / "cache")) if cpu_mode else GpuPlan())
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    cuda = torch.cuda.is_available() and not cpu_mode
    smi = nvidia_smi_gpus()
    error = preflight_error(torch.cuda.is_available(), smi, cpu_mode)
    if error is not None:
        raise SystemExit(f"gpu-check: {error}")
    model = plan.model                 # the default space's seed configuration (--cpu: tiny's)
    check = GpuCheck(device=torch.cuda.get_device_name(0) if cuda else "cpu", cpu_mode=cpu_mode,
                     plan=plan, estimate=estimate(plan, model))
    if cuda:
        check.gpu = {**gpu_identity(), **({"nvidia-smi -L": smi[0]} if smi else {})}
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    started = time.time()
    deadline = started + plan.budget_s - RESERVE_S

    def left() -> float:
        return deadline - time.time()

    def on_alarm(signum: int, frame: Any) -> None:
        raise BudgetExceeded(f"over the {plan.budget_s:.0f} s budget")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(plan.budget_s - RESERVE_S / 2))
    over = False

    def part(name: str, fn: Callable[[], None]) -> None:
        nonlocal over
        if name not in parts or over:
            return
        say(f"-- {name} ({left():.0f} s left)")
        t0 = time.time()
        try:
            fn()
        except BudgetExceeded as exc:
            over = True
            check.failures.append(f"{name}: {exc}; stopped, what was measured is kept")
        except Exception as exc:  # noqa: BLE001 - recorded as a failure; the other parts still run
            first = str(exc).splitlines()[0] if str(exc) else ""
            check.failures.append(f"{name}: {type(exc).__name__}: {first}")
            say(f"{name} raised {type(exc).__name__}: {first}")
        finally:
            check.took[name] = check.took.get(name, 0.0) + time.time() - t0
            write_outputs(out_dir, check)

    def gpu_tests() -> None:
        results, printed = run_gpu_tests(Path(tests), not cuda, timeout=min(240.0, left() - 60))
        check.tests = results
        say(printed[-6000:])
        bad = [t.name for t in results if t.outcome in ("failed", "error")]
        if bad:
            check.failures.append(f"CUDA tests failed: {', '.join(bad)}")
        skipped = [t for t in results if t.outcome == "skipped"]
        if skipped:
            check.skipped.append(f"{len(skipped)} CUDA tests: {skipped[0].message or 'no CUDA'}")

    def dtypes() -> None:
        check.dtypes = dtype_report(device, plan.data, plan.model)
        say(f"dtypes: {check.dtypes}")

    from vidtune.data import load_arrays, make_loaders

    def probe() -> None:
        from vidtune.trainable.core.packing import CONTEXT_MB, per_gpu, probe_memory, share_of
        from vidtune.trainable.core.search_config import SearchConfig

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
        say(check.probe)

    def data_share() -> None:
        from benchmarks.lib.data_share import measure_data_share

        check.share = measure_data_share(plan.data, model, plan.batch_size, plan.data_repeats,
                                         progress=True, device=device)
        if cuda:
            torch.cuda.empty_cache()   # the in-memory batches: give their memory back to the trials

    def packed() -> None:
        from benchmarks.lib.packed import predict_wall, run_packed
        from vidtune.search_spaces import get_space
        from vidtune.trainable.core.packing import share_of
        from vidtune.trainable.core.search_config import SearchConfig

        params = dict(get_space(plan.space).default)
        train_clips = len(make_loaders(plan.data, batch_size=plan.batch_size, progress=False).train.indices)
        cpus = max(1, (os.cpu_count() or 1) // max(plan.packings))
        cfg = SearchConfig(space=plan.space, max_epochs=plan.epochs, batch_size=plan.batch_size,
                           cpus_per_trial=cpus, data=plan.data, results_dir=str(out_dir))
        root = tempfile.mkdtemp(prefix="vidtune-gpu-check-")
        last: PackedRun | None = None
        try:
            for k in plan.packings:
                if last is not None:
                    predicted = predict_wall(k, last.per_gpu, last.wall_s, last.start_up_s)
                    if predicted > left():
                        check.failures.append(f"{k} trials per GPU not run: predicted {predicted:.0f} s, "
                                              f"{left():.0f} s of the budget left")
                        continue
                share = share_of(k) if cuda else 0.0
                run = run_packed(k, share, root, cfg, params, train_clips, deadline, log=say)
                check.packed.append(run)
                say(f"packed {k}: {run.clips_per_s:.0f} clips/s, util {run.util}, peaks "
                    f"{run.reserved_mb or run.peak_mb} MiB, cap {run.cap_mb:.0f} MiB, wall {run.wall_s:.0f} s")
                if run.errors:
                    check.failures.append(f"{run.errors} of {k} packed trials errored")
                if run.stopped:
                    check.failures.append(f"{run.stopped} of {k} packed trials stopped at the budget")
                last = run
                write_outputs(out_dir, check)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    try:
        part("CUDA tests", gpu_tests)
        part("dtypes", dtypes)
        part("data cache", lambda: load_arrays(plan.data, progress=True))
        if cuda:
            part("probe", probe)
        elif "probe" in parts:
            check.skipped.append("the auto probe (it measures a CUDA device)")
        part("data share", data_share)
        part("packed trials", packed)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if time.time() - started > plan.budget_s:
        check.failures.append(f"over the {plan.budget_s:.0f} s budget by "
                              f"{time.time() - started - plan.budget_s:.0f} s")
    write_outputs(out_dir, check)
    return check


def fold(out_dir: str | Path, docs: str | Path) -> str:
    """Write a device run's section (out_dir/gpu_check.md) into `docs` (docs/benchmarks.md)
    and copy its figure beside it. ValueError for a --cpu run or a folder without a run."""
    out_dir, docs = Path(out_dir), Path(docs)
    result = out_dir / "gpu_check.json"
    if not result.is_file():
        raise ValueError(f"{out_dir} holds no gpu_check.json; give the folder a device run "
                         "wrote ($OUT, or the files_at folder it came back to)")
    found = json.loads(result.read_text())
    if found.get("cpu_mode"):
        raise ValueError(f"{result} is a --cpu run: nothing in it was measured on a GPU, so it "
                         "is not folded into the benchmarks; run `make gpu-check` on a GPU")
    write_section(docs, KEY, (out_dir / "gpu_check.md").read_text())
    figure = out_dir / "gpu-packed.png"
    if figure.is_file():
        shutil.copyfile(figure, docs.parent / figure.name)
    return f"folded {result} ({found.get('device')}) into {docs}"
