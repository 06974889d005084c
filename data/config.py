"""DataConfig: where clips come from, their size (T, H, W), the split and the augmentation."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

SYNTHETIC = "synthetic"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_cache_dir() -> Path:
    """Decoded/generated stores live here unless a cache_dir is given."""
    env = os.environ.get("VIDTUNE_CACHE")
    return Path(env).expanduser().resolve() if env else (Path.home() / ".cache" / "vidtune").resolve()


def split_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']: the comma-separated items of a flag."""
    return [item.strip() for item in text.split(",") if item.strip()]


def weights_items(text: str) -> list[tuple[str, str]]:
    """--encoder-weights 'PATH' or 'NAME=PATH,NAME=PATH' -> [(name or '', path), ...]."""
    items = []
    for item in split_list(text):
        name, sep, path = item.partition("=")
        if not sep:
            name, path = "", item
        name, path = name.strip(), path.strip()
        if sep and (not _NAME.match(name) or not path):
            raise ValueError(f"encoder_weights item {item!r} is not NAME=PATH; write e.g. "
                             "resnet18=/models/resnet18.pth, or the path alone")
        items.append((name, path))
    return items


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from and their size. Each field's metadata is its command-line flag."""

    source: str = field(default=SYNTHETIC, metadata={
        "flag": "--data", "metavar": "DATA",
        "help": "'synthetic' (the benchmark), a folder root/<class>/<video files>, or a "
                "manifest .csv with columns path,label[,split][,start,end]"})
    frames: int = field(default=8, metadata={"help": "frames per clip, T"})
    height: int = field(default=32, metadata={"help": "frame height, H"})
    width: int = field(default=32, metadata={"help": "frame width, W"})
    num_clips: int = field(default=1000, metadata={
        "help": "synthetic only: clips in train + val"})
    noise: float = field(default=0.6, metadata={
        "help": "synthetic only: difficulty in [0, 1] (pixel noise and distractors)"})
    seed: int = field(default=0, metadata={
        "flag": "--data-seed", "help": "synthetic content, the train/val split and the "
                                       "augmentation"})
    val_fraction: float = field(default=0.2, metadata={
        "help": "share of each class held out for validation"})
    split_file: str = field(default="", metadata={
        "metavar": "FILE", "help": "official split lists that replace the random split: "
        "UCF101's trainlist01.txt,testlist01.txt or HMDB51's '*_test_split1.txt' (comma-"
        "separated, globs allowed); the lists' test clips validate"})
    stored_frames: int = field(default=0, metadata={
        "help": "frames kept per clip in the cache, uniformly over the video, >= --frames (0: "
                "--frames); with more, --augment trains on a random window of --frames of "
                "them and evaluation takes the middle one"})
    augment: bool = field(default=False, metadata={
        "help": "augment training clips: a random window of the stored frames, a random "
                "resized crop that is the same for every frame, mild colour jitter; never a "
                "flip or time reversal (see docs/guide/data.md)"})
    encoder_weights: str = field(default="", metadata={
        "metavar": "PATH", "help": "local weights of a torchvision encoder (resnet18, "
        "mobilenet_v3_small), e.g. torchvision's resnet18-f37072fd.pth; NAME=PATH,... for "
        "several; never downloaded"})
    decode_workers: int = field(default=0, metadata={
        "help": "processes that decode videos into the cache (0: one per core)"})
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
        if not isinstance(self.stored_frames, int) or self.stored_frames < 0 or (
                0 < self.stored_frames < self.frames):
            raise ValueError(f"stored_frames is {self.stored_frames!r}, but must be 0 (as many as "
                             f"--frames) or at least frames ({self.frames}), e.g. "
                             f"{2 * self.frames}")
        if not isinstance(self.decode_workers, int) or self.decode_workers < 0:
            raise ValueError(f"decode_workers is {self.decode_workers!r}, but must be >= 0 "
                             "(0: one per core)")
        if self.split_file and self.is_synthetic:
            raise ValueError(f"split_file is {self.split_file!r}, but the synthetic benchmark has "
                             "its own split; give --split-file with a video folder or manifest")
        if self.split_file and not split_list(self.split_file):
            raise ValueError(f"split_file is {self.split_file!r}; give one or more paths, e.g. "
                             "ucfTrainTestlist/trainlist01.txt,ucfTrainTestlist/testlist01.txt")
        weights_items(self.encoder_weights)   # raises for a malformed item

    @property
    def is_synthetic(self) -> bool:
        return self.source == SYNTHETIC

    @property
    def is_manifest(self) -> bool:
        return not self.is_synthetic and self.source.lower().endswith(".csv")

    @property
    def stored(self) -> int:
        """Frames per clip in the cache, S >= T: windows of T of them make the clips."""
        return self.stored_frames or self.frames

    def resolved(self) -> DataConfig:
        """Paths made absolute: Ray trials chdir into their own folder before running."""
        source = self.source if self.is_synthetic else str(Path(self.source).expanduser().resolve())
        cache = str(Path(self.cache_dir).expanduser().resolve()) if self.cache_dir else str(default_cache_dir())
        splits = ",".join(str(Path(p).expanduser().absolute()) for p in split_list(self.split_file))
        weights = ",".join(f"{name}={_absolute(path)}" if name else _absolute(path)
                           for name, path in weights_items(self.encoder_weights))
        return replace(self, source=source, cache_dir=cache, split_file=splits,
                       encoder_weights=weights)


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())
