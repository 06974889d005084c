"""DataConfig: where clips come from and their size (T, H, W)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

SYNTHETIC = "synthetic"


def default_cache_dir() -> Path:
    """Decoded/generated stores live here unless a cache_dir is given."""
    env = os.environ.get("VIDTUNE_CACHE")
    return Path(env).expanduser().resolve() if env else (Path.home() / ".cache" / "vidtune").resolve()


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from and their size. Each field's metadata is its command-line flag."""

    source: str = field(default=SYNTHETIC, metadata={
        "flag": "--data", "metavar": "DIR",
        "help": "'synthetic' (the benchmark) or a folder root/<class>/<video files>"})
    frames: int = field(default=8, metadata={"help": "frames per clip, T"})
    height: int = field(default=32, metadata={"help": "frame height, H"})
    width: int = field(default=32, metadata={"help": "frame width, W"})
    num_clips: int = field(default=1000, metadata={
        "help": "synthetic only: clips in train + val"})
    noise: float = field(default=0.6, metadata={
        "help": "synthetic only: difficulty in [0, 1] (pixel noise and distractors)"})
    seed: int = field(default=0, metadata={
        "flag": "--data-seed", "help": "synthetic content and the train/val split"})
    val_fraction: float = field(default=0.2, metadata={
        "help": "share of each class held out for validation"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "where decoded/generated clips are cached (default $VIDTUNE_CACHE or "
                "~/.cache/vidtune)"})

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
