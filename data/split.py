"""Stratified, deterministic train/val split."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), each sorted; every class with >= 2 clips gets >= 1 in each part.

    Per class, round(n * val_fraction) clips go to val (clamped to [1, n-1] when n >= 2), chosen
    by a seeded permutation, so the split depends only on labels, val_fraction and seed.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction is {val_fraction}, but must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
