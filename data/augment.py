"""Label-keeping augmentation, and the windows of T frames taken from a clip's S stored frames.

A clip in the cache holds S frames spread uniformly over its video (S >= T, --stored-frames).
- Evaluation, and training without augmentation, take the middle window of T consecutive
  stored frames (all of them when S == T). Multi-clip evaluation takes k windows spread evenly
  from the first to the last and averages the model's probabilities over them.
- Training with augmentation (--augment) takes, for each clip and epoch:
  - a random window of T consecutive stored frames (temporal jitter);
  - a random resized crop, the same for every frame of the clip: 60-100 % of the area, aspect
    3:4 to 4:3, resized back to H x W;
  - mild colour jitter, the same for every frame: brightness, contrast and saturation each
    times 0.8-1.2. A constant factor keeps a change over time: "brighten" still brightens.
  The crop and colour use torchvision.transforms.v2.functional on the (T, 3, H, W) frames.

There is no horizontal flip and no time reversal: either one turns a motion class into
another (move_right into move_left, brighten into dim), so it would teach wrong labels.

A clip's randomness is seeded by (seed, epoch, clip number) alone, so an epoch's batches do
not depend on what ran before it: a resumed trial sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def middle(stored: int, frames: int) -> int:
    """The first stored frame of the middle window of `frames`."""
    return (stored - frames) // 2


def window_starts(stored: int, frames: int, count: int) -> np.ndarray:
    """The first stored frame of `count` windows spread evenly over the stored frames; one
    window is the middle one. ValueError if there are fewer distinct windows."""
    distinct = stored - frames + 1
    if count < 1:
        raise ValueError(f"clips is {count}, but must be >= 1")
    if count > distinct:
        raise ValueError(f"clips is {count}, but the cache keeps {stored} frames per clip, so "
                         f"there are only {distinct} windows of {frames}; evaluate with "
                         f"--clips {distinct} or less, or train with a larger --stored-frames")
    if count == 1:
        return np.array([middle(stored, frames)], dtype=np.int64)
    return np.rint(np.linspace(0, stored - frames, count)).astype(np.int64)   # (count,)


@dataclass(frozen=True)
class Augmentation:
    """The ranges of the random choices (mild by default: no flips, see the module docstring)."""

    scale: tuple[float, float] = (0.6, 1.0)          # share of the frame's area the crop keeps
    ratio: tuple[float, float] = (3 / 4, 4 / 3)      # the crop's width / height
    brightness: float = 0.2                          # factor in [1 - b, 1 + b]
    contrast: float = 0.2
    saturation: float = 0.2

    def crop_box(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(top, left, h, w) as torchvision's RandomResizedCrop picks it, from `rng`."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        return 0, 0, height, width

    def clip(self, stored: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
        """(S, H, W, 3) uint8 -> an augmented (frames, H, W, 3) uint8 window."""
        import torch
        from torchvision.transforms.v2 import functional as F

        S, H, W = stored.shape[:3]
        start = int(rng.integers(0, S - frames + 1))
        top, left, h, w = self.crop_box(H, W, rng)
        b, c, s = rng.uniform(-1.0, 1.0, size=3) * (self.brightness, self.contrast, self.saturation) + 1
        x = torch.from_numpy(np.ascontiguousarray(stored[start:start + frames]))
        x = x.permute(0, 3, 1, 2)                                        # (T, 3, H, W)
        x = F.resized_crop(x, top, left, h, w, size=[H, W], antialias=True)
        x = F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(x, b), c), s)
        return x.permute(0, 2, 3, 1).numpy()                             # (T, H, W, 3)


def view_batch(batch: np.ndarray, numbers: np.ndarray, frames: int, augment: Augmentation | None,
               seed: int, epoch: int) -> np.ndarray:
    """The clips a batch shows the model: (B, S, H, W, 3) -> (B, T, H, W, 3) uint8.

    Without augmentation, the middle window (the batch itself when S == T). With it, each clip
    augmented with its own generator seeded by (seed, epoch, its number in the store).
    """
    S = batch.shape[1]
    if augment is None:
        start = middle(S, frames)
        return batch if S == frames else batch[:, start:start + frames]
    out = np.empty((len(batch), frames, *batch.shape[2:]), dtype=np.uint8)
    for i, number in enumerate(numbers):
        rng = np.random.default_rng([seed, epoch, int(number)])
        out[i] = augment.clip(batch[i], frames, rng)
    return out
