"""From a DataConfig to (train, val) batch iterators of float clips (B, T, C, H, W).

Clips stay uint8 in a (memory-mapped) store; a batch is gathered, cut to its window of T
frames (and augmented, for training with --augment: data/augment.py), converted to float and
normalised only when it is needed. A ClipLoader converts on the CPU; on a GPU, data.device
takes its uint8 batches (ClipLoader.uint8_batches) and converts them on the device instead.
Never a horizontal flip or a time flip: the first would turn "move_right" into
"move_left", the second would swap every reversed pair.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidtune.data.arrays import VideoArrays
from vidtune.data.augment import Augmentation, view_batch, window_starts
from vidtune.data.checks import check_clips, check_given_split
from vidtune.data.config import DataConfig
from vidtune.data.split import given_split, stratified_split
from vidtune.data.store import open_store, write_store
from vidtune.data.synthetic import make_synthetic

MEAN = 0.5   # uint8 / 255 is shifted and scaled to roughly [-1, 1]
STD = 0.5


def to_float(clips_u8: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, T, 3, H, W) float32, normalised."""
    x = clips_u8.permute(0, 1, 4, 2, 3).float()   # (B, T, 3, H, W)
    return x.div_(255.0).sub_(MEAN).div_(STD)


def _synthetic_key(cfg: DataConfig) -> dict:
    return {"kind": "synthetic", "num_clips": cfg.num_clips, "frames": cfg.stored,
            "height": cfg.height, "width": cfg.width, "noise": cfg.noise, "seed": cfg.seed}


def load_arrays(cfg: DataConfig, progress: bool = True, decode: bool = True) -> VideoArrays:
    """All clips of cfg's source, cfg.stored frames each, from the cache when it is current
    (built and cached otherwise; decode=False: a missing video cache is an error, see
    data.build.load_source)."""
    cfg = cfg.resolved()
    assert cfg.cache_dir is not None
    if cfg.is_synthetic:
        key = _synthetic_key(cfg)
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        path = Path(cfg.cache_dir) / "synthetic" / digest
        arrays = open_store(path, key)
        if arrays is None:
            if progress:
                print(f"generating synthetic benchmark: {cfg.num_clips} clips of "
                      f"{cfg.stored}x{cfg.height}x{cfg.width} -> {path}", file=sys.stderr)
            write_store(path, make_synthetic(cfg.num_clips, cfg.stored, cfg.height, cfg.width,
                                             cfg.noise, cfg.seed), key)
            arrays = open_store(path, key)
            assert arrays is not None
        return arrays
    from vidtune.data.build import load_source
    from vidtune.data.catalogue import read_catalogue

    catalogue = read_catalogue(cfg.source, cfg.split_file)
    arrays, _report = load_source(catalogue, cfg.stored, cfg.height, cfg.width, cfg.cache_dir,
                                  progress=progress, workers=cfg.decode_workers, decode=decode)
    return arrays


class ClipLoader:
    """Batches of (clips (B, T, 3, H, W) float, labels (B,) int64) over a subset of a store.

    With shuffle, epoch e uses a permutation seeded by (seed, e): the order is a pure function
    of the epoch, so a run resumed at epoch e sees exactly the batches it would have seen.
    Each clip shows `frames` of its stored frames (default: all): the middle window, or with
    `augment` a random window, crop and colour seeded by (seed, epoch, clip) (data/augment.py).
    """

    def __init__(self, arrays: VideoArrays, indices: np.ndarray, batch_size: int,
                 shuffle: bool, seed: int = 0, frames: int | None = None,
                 augment: Augmentation | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size is {batch_size}, but must be >= 1")
        self.arrays, self.indices = arrays, np.asarray(indices, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.frames = frames or arrays.clip_shape[0]
        if self.frames > arrays.clip_shape[0]:
            raise ValueError(f"frames is {self.frames}, but the clips hold {arrays.clip_shape[0]}")
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The store indices of each batch of the current epoch, in batch order."""
        order = self.indices
        if self.shuffle:
            order = order[np.random.default_rng([self.seed, self.epoch]).permutation(len(order))]
        for start in range(0, len(order), self.batch_size):
            # Sorted gather reads the memmap sequentially; the batch order itself does not matter.
            yield np.sort(order[start : start + self.batch_size])

    def uint8_batches(self, pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The same batches as iterating the loader, before conversion: clips (B, T, H, W, 3)
        uint8 and labels (B,) int64, gathered into pinned (page-locked) host memory with
        pin_memory, which a GPU copy needs to run without blocking."""
        S, H, W = self.arrays.clip_shape
        for idx in self.batch_indices():
            clips = torch.empty((len(idx), self.frames, H, W, 3), dtype=torch.uint8, pin_memory=pin_memory)
            if self.augment is None and self.frames == S:   # straight from the store: one copy
                np.take(self.arrays.clips, idx, axis=0, out=clips.numpy(), mode="clip")
            else:
                clips.numpy()[:] = view_batch(self.arrays.clips[idx], idx, self.frames, self.augment,
                                              self.seed, self.epoch)          # (B, T, H, W, 3)
            labels = torch.from_numpy(self.arrays.labels[idx])
            yield clips, labels.pin_memory() if pin_memory else labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for clips, labels in self.uint8_batches():
            yield to_float(clips), labels


class MultiClipLoader(ClipLoader):
    """Batches of (clips (B, k, T, 3, H, W) float, labels (B,)) for multi-clip evaluation: k
    windows of each clip, spread evenly over its stored frames (loop.evaluate averages the
    model's probabilities over them). In order, never augmented."""

    def __init__(self, arrays: VideoArrays, indices: np.ndarray, batch_size: int, frames: int,
                 clips: int) -> None:
        super().__init__(arrays, indices, batch_size, shuffle=False, frames=frames)
        self.starts = window_starts(arrays.clip_shape[0], frames, clips)   # (k,)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        T = self.frames
        for start in range(0, len(self.indices), self.batch_size):
            idx = np.sort(self.indices[start : start + self.batch_size])
            stored = self.arrays.clips[idx]                                     # (B, S, H, W, 3)
            windows = np.stack([stored[:, s:s + T] for s in self.starts], 1)    # (B, k, T, H, W, 3)
            B, k = windows.shape[:2]
            x = to_float(torch.from_numpy(np.ascontiguousarray(windows.reshape(B * k, *windows.shape[2:]))))
            yield x.view(B, k, *x.shape[1:]), torch.from_numpy(self.arrays.labels[idx])


@dataclass(frozen=True)
class Loaders:
    train: ClipLoader
    val: ClipLoader
    class_names: tuple[str, ...]


def split_indices(arrays: VideoArrays, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) clip numbers: the split the data gives (a manifest's split column, split
    lists), else the stratified random one. One-line ValueError if it cannot train a classifier."""
    if arrays.splits is None:
        check_clips(arrays.labels, arrays.class_names, cfg.resolved())
        return stratified_split(arrays.labels, cfg.val_fraction, cfg.seed)
    check_given_split(arrays.labels, arrays.splits, arrays.class_names, cfg.resolved())
    train, val, _test = given_split(arrays.splits)
    return train, val


def make_loaders(cfg: DataConfig, batch_size: int, progress: bool = True,
                 decode: bool = True) -> Loaders:
    """Train/val loaders over cfg's clips (train shuffled per epoch and, with cfg.augment,
    augmented; val in order, never augmented). decode=False: see load_arrays."""
    arrays = load_arrays(cfg, progress=progress, decode=decode)
    train_idx, val_idx = split_indices(arrays, cfg)
    return Loaders(
        train=ClipLoader(arrays, train_idx, batch_size, shuffle=True, seed=cfg.seed,
                         frames=cfg.frames, augment=Augmentation() if cfg.augment else None),
        val=ClipLoader(arrays, val_idx, batch_size, shuffle=False, frames=cfg.frames),
        class_names=arrays.class_names,
    )
