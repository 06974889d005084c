"""What every benchmark section shares: where it ran, verdicts, formats, writing the section.

Each benchmark writes its own section of a markdown file (docs/benchmarks.md), between
`<!-- key:start -->` and `<!-- key:end -->`, and leaves the rest of the file alone.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from vidtune.data import DataConfig
from vidtune.trainable.core.config import ModelConfig

SMOKE_NOTE = "*Smoke run: tiny sizes, the figures only show that the script works.*"


@dataclass(frozen=True)
class Verdict:
    """A goal's outcome as a table prints it.

    ok is None when the measurement cannot decide: the machine's own run-to-run noise is
    larger than the margin the goal has to resolve. Printing PASS or FAIL there would claim
    more than was measured, so the cell says "not resolvable" and why.
    """

    ok: bool | None
    note: str = ""          # the caveat printed beside the word, e.g. which estimate decided

    def __str__(self) -> str:
        word = {True: "**PASS**", False: "**FAIL**", None: "**not resolvable**"}[self.ok]
        return f"{word} ({self.note})" if self.note else word


def verdict(ok: bool) -> str:
    """A plain PASS/FAIL cell, for goals whose figure has no noise estimate."""
    return str(Verdict(ok))


def spread(xs: list[float]) -> float:
    """(max - min) / median: how much the same measurement varies on this machine."""
    if not xs:
        raise ValueError("spread of no values; measure at least one")
    return (max(xs) - min(xs)) / statistics.median(xs)


def machine_line() -> str:
    """Where the figures come from: date, OS, cores, CPU model, GPU, torch, load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    # Other processes on the same cores distort every ratio here: record how busy it was.
    load = (f", 1-min load average {os.getloadavg()[0]:.1f} when written (this run included)"
            if hasattr(os, "getloadavg") else "")
    return (f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, "
            f"Python {platform.python_version()}{load}")


def describe_data(data: DataConfig) -> str:
    if data.is_synthetic:
        return (f"synthetic, {data.num_clips} clips of {data.frames}x{data.height}x{data.width} "
                f"(T x H x W), noise {data.noise}, val fraction {data.val_fraction}")
    return f"{data.source}, clips of {data.frames}x{data.height}x{data.width}"


def describe_model(cfg: ModelConfig) -> str:
    return (f"conv {'-'.join(map(str, cfg.conv_widths))}, LSTM {cfg.lstm_hidden}"
            f"x{cfg.lstm_layers}, spatial pool {cfg.spatial_pool}")


def fmt_list(xs: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in xs) or "-"


def fmt_pt(x: float) -> str:
    """A difference of accuracies (fractions) in percentage points, signed."""
    return f"{100 * x:+.1f} pt"


@contextmanager
def stage(took: dict[str, float], name: str) -> Iterator[None]:
    """Announce a part of a benchmark on stderr and add its wall time to took[name]."""
    print(f"-- {name}", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        took[name] = took.get(name, 0.0) + time.perf_counter() - t0


def write_section(path: str | Path, key: str, body: str) -> None:
    """Put `body` between `<!-- key:start -->` and `<!-- key:end -->` in path, leaving the rest.

    A missing file is created and a missing section appended, so two benchmarks can share
    one file without clobbering each other.
    """
    path = Path(path)
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed: an interrupted write never leaves half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
