"""A packed trial's CUDA memory cap: its share of the card less its own CUDA context.

torch's allocator cap (set_per_process_memory_fraction) does not count the CUDA context and the
cuDNN/cuBLAS handles, so k caps of total/k would add up to more than the card. Both the trial
(core.trial.limit_resources) and the packing rule (core.packing) read the context from here.
"""

from __future__ import annotations

CONTEXT_MB = 512.0     # a trial's CUDA context and cuDNN/cuBLAS handles (an estimate; gpu_check measures it)


def cap_fraction(share: float, total_mb: float, context_mb: float = CONTEXT_MB) -> float:
    """The fraction of the card torch may give a trial of `share` (0 < share < 1): its share
    less its CUDA context, which torch's allocator does not count. ValueError, naming the fix,
    when the share does not even hold the context."""
    if not 0 < share < 1 or total_mb <= 0:
        raise ValueError(f"share ({share}) must lie in (0, 1) and total_mb ({total_mb}) be > 0")
    cap = share - context_mb / total_mb
    if cap <= 0.1 * share:
        raise ValueError(f"gpus_per_trial {share:g} gives a trial {share * total_mb:.0f} MiB of "
                         f"this {total_mb:.0f} MiB GPU, of which its CUDA context takes about "
                         f"{context_mb:.0f} MiB; give each trial a larger --gpus-per-trial")
    return cap
