"""The one in-memory form every data source produces: uint8 clips plus labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoArrays:
    """A labelled set of fixed-size clips.

    clips: (N, T, H, W, 3) uint8, possibly a read-only np.memmap.
    labels: (N,) int64 in [0, len(class_names)).
    splits: None (a random split, made by the loaders) or (N,) int8 split codes given by the
    data (data.split.SPLIT_CODES: train 0, val 1, test 2, left out -1).
    """

    clips: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    splits: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.clips.ndim != 5 or self.clips.shape[-1] != 3:
            raise ValueError(f"clips must be (N, T, H, W, 3), got shape {self.clips.shape}")
        if self.clips.dtype != np.uint8:
            raise ValueError(f"clips must be uint8, got {self.clips.dtype}")
        if self.labels.shape != (self.clips.shape[0],):
            raise ValueError(
                f"labels shape {self.labels.shape} does not match {self.clips.shape[0]} clips"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(self.class_names)}), "
                f"got [{self.labels.min()}, {self.labels.max()}]"
            )
        if self.splits is not None and (self.splits.shape != self.labels.shape
                                        or not np.isin(self.splits, (-1, 0, 1, 2)).all()):
            raise ValueError(f"splits must be ({len(self.labels)},) codes in -1..2, got shape "
                             f"{self.splits.shape}")

    def __len__(self) -> int:
        return int(self.clips.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """(T, H, W) of every clip."""
        _, t, h, w, _ = self.clips.shape
        return int(t), int(h), int(w)
