"""DataConfig: where clips come from and their size (T, H, W)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

SYNTHETIC = "synthetic"


def default_cache_dir() -> Path:
    """Decoded/generated stores live here unless a cache_dir is given."""
    env = os.environ.get("VIDTUNE_CACHE")
    return Path(env).expanduser().resolve() if env else (Path.home() / ".cache" / "vidtune").resolve()


@dataclass(frozen=True)
class DataConfig:
    source: str = SYNTHETIC        # "synthetic" or a folder root/<class>/<video files>
    frames: int = 8                # T: frames per clip (uniformly sampled from real videos)
    height: int = 32               # H
    width: int = 32                # W
    num_clips: int = 1000          # synthetic only: clips in the whole set (train + val)
    noise: float = 0.6             # synthetic only: difficulty (pixel noise and distractors), 0..1
    seed: int = 0                  # synthetic content and the train/val split
    val_fraction: float = 0.2
    cache_dir: str | None = None   # default: $VIDTUNE_CACHE or ~/.cache/vidtune

    def __post_init__(self) -> None:
        for name in ("frames", "height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} is {value!r}, but must be an integer >= 1")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"height x width is {self.height}x{self.width}, but must be at least 8x8")
        if self.num_clips < 2:
            raise ValueError(f"num_clips is {self.num_clips}, but must be >= 2")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise is {self.noise}, but must lie in [0, 1]")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction is {self.val_fraction}, but must lie in (0, 1), e.g. 0.2")

    @property
    def is_synthetic(self) -> bool:
        return self.source == SYNTHETIC

    def resolved(self) -> DataConfig:
        """Paths made absolute: Ray trials chdir into their own folder before running."""
        source = self.source if self.is_synthetic else str(Path(self.source).expanduser().resolve())
        cache = str(Path(self.cache_dir).expanduser().resolve()) if self.cache_dir else str(default_cache_dir())
        return replace(self, source=source, cache_dir=cache)
