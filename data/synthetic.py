"""A deterministic synthetic 10-class video benchmark in which temporal order matters.

Classes come in five time-reversed pairs: class 2k+1 is exactly class 2k played backwards
(object moving right/left, down/up, growing/shrinking, brightening/dimming, turning from red
to green / green to red). The multiset of frames is the same within a pair, so a model that
averages per-frame features cannot do better than 50% on each pair: the LSTM has to use order.
Pixel noise, a random-walking distractor and random size/speed/position keep it from being
trivial, so architecture and learning rate matter.
"""

from __future__ import annotations

import numpy as np

from vidtune.data.arrays import VideoArrays

CLASS_NAMES: tuple[str, ...] = (
    "move_right", "move_left",
    "move_down", "move_up",
    "grow", "shrink",
    "brighten", "dim",
    "red_to_green", "green_to_red",
)
NUM_CLASSES = len(CLASS_NAMES)


def _square(canvas: np.ndarray, cy: float, cx: float, half: float, color: np.ndarray) -> None:
    """Paint an axis-aligned square centred at (cy, cx) onto canvas (H, W, 3) in place."""
    h, w, _ = canvas.shape
    y0, y1 = int(round(cy - half)), int(round(cy + half))
    x0, x1 = int(round(cx - half)), int(round(cx + half))
    y0, x0 = max(y0, 0), max(x0, 0)
    y1, x1 = min(y1, h - 1), min(x1, w - 1)
    if y1 >= y0 and x1 >= x0:
        canvas[y0 : y1 + 1, x0 : x1 + 1] = color


def render_clip(label: int, rng: np.random.Generator, frames: int, height: int, width: int,
                noise: float) -> np.ndarray:
    """One clip of class `label` as (T, H, W, 3) uint8.

    An odd label renders its even partner with the same random draws, then reverses time,
    so render_clip(2k+1, rng_a) == render_clip(2k, rng_b)[::-1] when rng_a, rng_b are equal.
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label is {label}, but must lie in [0, {NUM_CLASSES})")
    kind, reverse = label // 2, label % 2 == 1
    T, H, W = frames, height, width
    s = min(H, W)
    t = np.linspace(0.0, 1.0, T)                                   # (T,) progress through the clip

    background = rng.uniform(0.1, 0.3) + 0.15 * noise * rng.standard_normal((1, H, W, 1))
    video = np.broadcast_to(background, (T, H, W, 3)).copy()       # (T, H, W, 3) float in ~[0, 1]

    color = rng.uniform(0.55, 1.0, size=3)
    half = rng.uniform(0.08, 0.14) * s
    travel = rng.uniform(0.35, 0.6)                                # fraction of the frame crossed
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    start = rng.uniform(0.1, 0.9 - travel)

    # Distractor: a smaller grey square doing a random walk, present in every class.
    dpos = rng.uniform(0.15, 0.85, size=2) + np.cumsum(rng.normal(0, 0.06 * noise, (T, 2)), axis=0)
    dgrey = rng.uniform(0.4, 0.9) * np.ones(3)
    dhalf = 0.06 * s

    for i in range(T):
        frame = video[i]
        if noise > 0:
            _square(frame, dpos[i, 0] * H, dpos[i, 1] * W, dhalf, dgrey)
        if kind == 0:    # move right: x goes start -> start + travel
            _square(frame, cy * H, (start + travel * t[i]) * W, half, color)
        elif kind == 1:  # move down
            _square(frame, (start + travel * t[i]) * H, cx * W, half, color)
        elif kind == 2:  # grow
            _square(frame, cy * H, cx * W, half * (0.4 + 1.4 * t[i]), color)
        elif kind == 3:  # brighten
            _square(frame, cy * H, cx * W, half * 1.4, color * (0.15 + 0.85 * t[i]))
        else:            # red to green
            rg = np.array([1.0 - t[i], t[i], 0.15]) * color.max()
            _square(frame, cy * H, cx * W, half * 1.4, rg)

    video += noise * 0.25 * rng.standard_normal(video.shape)
    clip = (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return clip[::-1].copy() if reverse else clip


def make_synthetic(num_clips: int, frames: int, height: int, width: int, noise: float = 0.35,
                   seed: int = 0) -> VideoArrays:
    """`num_clips` clips, classes balanced (counts differ by at most one), fully determined by seed."""
    if num_clips < 1:
        raise ValueError(f"num_clips is {num_clips}, but must be >= 1")
    labels = np.arange(num_clips, dtype=np.int64) % NUM_CLASSES
    np.random.default_rng(seed).shuffle(labels)
    clips = np.empty((num_clips, frames, height, width, 3), dtype=np.uint8)  # (N, T, H, W, 3)
    for n in range(num_clips):
        # Each clip has its own stream, so clip n does not depend on num_clips or on other clips.
        rng = np.random.default_rng([seed, n])
        clips[n] = render_clip(int(labels[n]), rng, frames, height, width, noise)
    return VideoArrays(clips=clips, labels=labels, class_names=CLASS_NAMES)
