"""What a trial computes in: one rule from the device class and the CPU's capability.

TrainConfig.precision is "auto" (the default), "bf16" or "fp32". choose_precision() turns it,
with the device, into a Precision that the loop uses for training and evaluation alike:

- CUDA, auto: bf16 autocast where the card has bf16 (torch.cuda.is_bf16_supported), else fp32;
- CPU, auto: bf16 autocast where the CPU has AMX-BF16 or AVX512-BF16 (torch.cpu's
  capabilities), else fp32: without them bf16 is emulated and slower than fp32;
- "bf16" or "fp32": as asked, on any device ("fp32" computes every float as before this rule
  existed; a test holds the CPU's fp32 path bit-exact).

Under bf16 the convolutions and linear layers run in bf16 (torch.autocast). The LSTM never
does: VideoModel runs it in LSTM_DTYPE, fp32, outside autocast. Autocast would choose its
dtype itself (fp16 through cuDNN's RNN on CUDA, with no GradScaler to keep small gradients
from underflowing: issue 23), and on this project's CPU a bf16 LSTM was no faster
(docs/benchmarks.md, bench_throughput). bf16 keeps fp32's exponent range, so nothing needs
loss scaling.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache

import torch

PRECISIONS = ("auto", "bf16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
LSTM_DTYPE = torch.float32    # what the LSTM computes in, whatever the precision (model.py)


@dataclass(frozen=True)
class Precision:
    """The resolved choice: name ("bf16" or "fp32") and why (recorded in the first report)."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the convolutions and linear layers."""
        return DTYPES[self.name]

    def autocast(self, device: torch.device) -> AbstractContextManager[object]:
        """The context a forward pass runs in: bf16 autocast, or nothing at all for fp32."""
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)


@lru_cache(maxsize=1)
def cpu_bf16_units() -> tuple[str, ...]:
    """The CPU's bf16 matrix units that oneDNN uses: ("amx_bf16", "avx512_bf16"), either or none."""
    caps = getattr(torch.cpu, "get_capabilities", None)
    found = caps() if caps is not None else {}
    return tuple(name for name in ("amx_bf16", "avx512_bf16") if found.get(name))


def check_precision(requested: str) -> str:
    if requested not in PRECISIONS:
        raise ValueError(f"precision is {requested!r}; known: {', '.join(PRECISIONS)} (auto: bf16 "
                         "where the device computes it natively, else fp32)")
    return requested


def choose_precision(requested: str, device: torch.device) -> Precision:
    """TrainConfig.precision and the device -> what the loop computes in. ValueError naming it."""
    if check_precision(requested) != "auto":
        return Precision(requested, "asked for")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: the GPU computes bf16")
        return Precision("fp32", "auto: the GPU has no bf16")
    if device.type == "cpu":
        units = cpu_bf16_units()
        if units:
            return Precision("bf16", f"auto: the CPU has {' and '.join(units)}")
        return Precision("fp32", "auto: the CPU has neither amx_bf16 nor avx512_bf16")
    return Precision("fp32", f"auto: no bf16 rule for {device.type}")
