"""From a DataConfig to (train, val) batch iterators of float clips (B, T, C, H, W).

Clips stay uint8 in a (memory-mapped) store; a batch is gathered, converted to float and
normalised only when it is needed. A ClipLoader converts on the CPU; on a GPU, data.device
takes its uint8 batches (ClipLoader.uint8_batches) and converts them on the device instead.
No augmentation: a horizontal flip would turn "move_right" into "move_left", and a time flip
would swap every reversed pair.
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
from vidtune.data.checks import check_clips
from vidtune.data.config import DataConfig
from vidtune.data.split import stratified_split
from vidtune.data.store import open_store, write_store
from vidtune.data.synthetic import make_synthetic

MEAN = 0.5   # uint8 / 255 is shifted and scaled to roughly [-1, 1]
STD = 0.5


def to_float(clips_u8: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, T, 3, H, W) float32, normalised."""
    x = clips_u8.permute(0, 1, 4, 2, 3).float()   # (B, T, 3, H, W)
    return x.div_(255.0).sub_(MEAN).div_(STD)


def _synthetic_key(cfg: DataConfig) -> dict:
    return {"kind": "synthetic", "num_clips": cfg.num_clips, "frames": cfg.frames,
            "height": cfg.height, "width": cfg.width, "noise": cfg.noise, "seed": cfg.seed}


def load_arrays(cfg: DataConfig, progress: bool = True) -> VideoArrays:
    """All clips of cfg's source, from the cache when it is current (built and cached otherwise)."""
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
                      f"{cfg.frames}x{cfg.height}x{cfg.width} -> {path}", file=sys.stderr)
            write_store(path, make_synthetic(cfg.num_clips, cfg.frames, cfg.height, cfg.width,
                                             cfg.noise, cfg.seed), key)
            arrays = open_store(path, key)
            assert arrays is not None
        return arrays
    from vidtune.data.video_folder import load_video_folder

    arrays, _report = load_video_folder(cfg.source, cfg.frames, cfg.height, cfg.width,
                                        cache_dir=cfg.cache_dir, progress=progress)
    return arrays


class ClipLoader:
    """Batches of (clips (B, T, 3, H, W) float, labels (B,) int64) over a subset of a store.

    With shuffle, epoch e uses a permutation seeded by (seed, e): the order is a pure function
    of the epoch, so a run resumed at epoch e sees exactly the batches it would have seen.
    """

    def __init__(self, arrays: VideoArrays, indices: np.ndarray, batch_size: int,
                 shuffle: bool, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size is {batch_size}, but must be >= 1")
        self.arrays, self.indices = arrays, np.asarray(indices, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
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
        uint8 and labels (B,) int64, gathered straight into pinned (page-locked) host memory
        with pin_memory, which a GPU copy needs to run without blocking."""
        T, H, W = self.arrays.clip_shape
        for idx in self.batch_indices():
            clips = torch.empty((len(idx), T, H, W, 3), dtype=torch.uint8, pin_memory=pin_memory)
            np.take(self.arrays.clips, idx, axis=0, out=clips.numpy(), mode="clip")  # (B, T, H, W, 3)
            labels = torch.from_numpy(self.arrays.labels[idx])
            yield clips, labels.pin_memory() if pin_memory else labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self.batch_indices():
            clips = torch.from_numpy(np.ascontiguousarray(self.arrays.clips[idx]))  # (B, T, H, W, 3)
            labels = torch.from_numpy(self.arrays.labels[idx])
            yield to_float(clips), labels


@dataclass(frozen=True)
class Loaders:
    train: ClipLoader
    val: ClipLoader
    class_names: tuple[str, ...]


def make_loaders(cfg: DataConfig, batch_size: int, progress: bool = True) -> Loaders:
    """Stratified train/val loaders over cfg's clips (train shuffled per epoch, val in order)."""
    arrays = load_arrays(cfg, progress=progress)
    check_clips(arrays.labels, arrays.class_names, cfg.resolved())   # one-line ValueError
    train_idx, val_idx = stratified_split(arrays.labels, cfg.val_fraction, cfg.seed)
    return Loaders(
        train=ClipLoader(arrays, train_idx, batch_size, shuffle=True, seed=cfg.seed),
        val=ClipLoader(arrays, val_idx, batch_size, shuffle=False),
        class_names=arrays.class_names,
    )
