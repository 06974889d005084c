"""Train/val splits: stratified and deterministic, or given by the data (a manifest's split
column, official split lists)."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "unused": -1}   # VideoArrays.splits


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


def given_split(splits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, test) of a split the data gives, each sorted.

    Validation takes the val clips; where there are none, the test clips (UCF101 and HMDB51
    have only train and test lists). Clips left out (-1) are in none of them.
    """
    codes = np.asarray(splits)
    train, val, test = (np.flatnonzero(codes == SPLIT_CODES[s]) for s in SPLITS)
    return train, (val if len(val) else test), test
