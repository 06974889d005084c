"""GPU utilization sampled while something runs: NVML through pynvml when it is installed,
else `nvidia-smi --query-gpu=utilization.gpu` streaming one line per period.

Utilization here is NVML's: the share of the last sample period (1/6 s to 1 s, by card)
during which at least one kernel was running on the GPU. It says how often the GPU was
busy, not how much of its compute the kernels used.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from types import TracebackType


def parse_smi_line(line: str) -> float | None:
    """'37' -> 37.0; '[N/A]', '' or anything else nvidia-smi may print -> None."""
    try:
        value = float(line.strip().rstrip("%").strip())
    except ValueError:
        return None
    return value if 0 <= value <= 100 else None


def mean_between(samples: list[tuple[float, float]], t0: float, t1: float) -> tuple[float | None, int]:
    """(mean utilization %, number of samples) of the samples taken in [t0, t1]."""
    inside = [u for t, u in samples if t0 <= t <= t1]
    return (statistics.fmean(inside) if inside else None), len(inside)


class UtilSampler:
    """`with UtilSampler() as s: ...` fills s.samples with (wall time, utilization %) of GPU
    `index` every period_s; s.source says how (or why nothing was sampled)."""

    def __init__(self, index: int = 0, period_s: float = 0.2) -> None:
        self.index, self.period_s = index, period_s
        self.samples: list[tuple[float, float]] = []
        self.memory: list[tuple[float, float]] = []   # (wall time, MiB in use on the card): NVML only
        self.source = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> UtilSampler:
        try:
            import pynvml  # nvidia-ml-py; optional

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self.source = "NVML (pynvml)"
            self._thread = threading.Thread(target=self._nvml, args=(pynvml, handle), daemon=True)
        except Exception:  # noqa: BLE001 - no pynvml or no NVML: try nvidia-smi
            smi = shutil.which("nvidia-smi")
            if smi is None:
                self.source = "unavailable: neither pynvml nor nvidia-smi found"
                return self
            self._proc = subprocess.Popen(
                [smi, f"--id={self.index}", "--query-gpu=utilization.gpu",
                 "--format=csv,noheader,nounits", f"-lms={max(1, round(self.period_s * 1000))}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.source = "nvidia-smi"
            self._thread = threading.Thread(target=self._smi, daemon=True)
        self._thread.start()
        return self

    def _nvml(self, pynvml, handle) -> None:
        while not self._stop.is_set():
            now = time.time()
            self.samples.append((now, float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)))
            self.memory.append((now, pynvml.nvmlDeviceGetMemoryInfo(handle).used / 1024.0**2))
            self._stop.wait(self.period_s)

    def _smi(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            value = parse_smi_line(line)
            if value is not None:
                self.samples.append((time.time(), value))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
