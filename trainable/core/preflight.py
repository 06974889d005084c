"""What the driver checks before Ray starts: where the search writes, the clip size, the data.

A search whose every trial would fail for the same reason is refused here, in one line that
names the value and the fix (ValueError; the commands exit 2), instead of failing each trial
inside Ray. No Ray here.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import optuna

from vidtune.data import load_arrays
from vidtune.data.checks import check_clips
from vidtune.data.store import StoreWriteError
from vidtune.search_spaces import SearchSpace, decode_widths, trace_space
from vidtune.trainable.core.config import ModelConfig
from vidtune.trainable.core.search_config import SearchConfig, filesystem, is_uri


def check_writable(folder: str, what: str, fix: str) -> None:
    """Write and remove a file in `folder` (a path or a URI), or, if it does not exist yet,
    in its nearest existing parent: nothing is created or left behind."""
    name = f".vidtune-write-check-{uuid.uuid4().hex}"
    try:
        if is_uri(folder):
            fs, base = filesystem(folder)
            fs.create_dir(base, recursive=True)   # no-op on object stores
            with fs.open_output_stream(f"{base.rstrip('/')}/{name}") as f:
                f.write(b"ok")
            fs.delete_file(f"{base.rstrip('/')}/{name}")
            return
        existing = Path(folder).expanduser().absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ValueError(f"{what} {folder} cannot be created: {existing} is a file, not a "
                             f"folder; {fix}")
        (existing / name).write_bytes(b"ok")
        (existing / name).unlink()
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"{what} {folder} is not writable ({reason}); {fix}") from None


def deepest_conv(space: SearchSpace) -> int:
    """The most conv blocks a space can give a model: conv_blocks' largest value (or the
    longest conv_widths choice) if it samples it, else its default's, else the seed model's."""
    sampled = trace_space(space).sampled
    dist = sampled["conv_blocks"].distribution if "conv_blocks" in sampled else None
    if isinstance(dist, (optuna.distributions.IntDistribution, optuna.distributions.FloatDistribution)):
        return int(dist.high)
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return max(int(c) for c in dist.choices)   # type: ignore[arg-type]
    widths = sampled["conv_widths"].distribution if "conv_widths" in sampled else None
    if isinstance(widths, optuna.distributions.CategoricalDistribution):
        return max(len(decode_widths(c)) for c in widths.choices)
    fixed = {**space.default, **space.constants}
    if "conv_blocks" in fixed:
        return int(fixed["conv_blocks"])
    if "conv_widths" in fixed:
        return len(decode_widths(fixed["conv_widths"]))
    return len(ModelConfig().conv_widths)


def check_clip_size(cfg: SearchConfig) -> None:
    """Every config the space can sample must take the clips: each conv block ends in
    MaxPool2d(2), which halves height and width (rounding down) and fails below 1 pixel, so
    n blocks need frames of at least 2**n x 2**n. Any number of frames >= 1 suits the LSTM."""
    blocks = deepest_conv(cfg.search_space())
    need = 2**blocks
    h, w = cfg.data.height, cfg.data.width
    if h < need or w < need:
        raise ValueError(
            f"clips of {h}x{w} pixels (--height x --width) are too small for space "
            f"{cfg.space_label!r}: it samples up to {blocks} conv blocks, each halving the frame, so "
            f"both must be >= {need}; use --height {max(h, need)} --width {max(w, need)} or a "
            "space with fewer conv blocks (see `vidtune spaces`)")


def preflight(cfg: SearchConfig) -> None:
    """All checks, cheapest first: the results and cache folders are writable, the clips fit
    the space's models, then the data (the cache is built here, with the decode report on
    stderr) has >= 2 classes with >= 2 clips each (data.checks.check_clips)."""
    target = cfg.experiment_path if _exists(cfg.experiment_path) else cfg.storage_root
    check_writable(target, "results folder", "choose another with --results-dir (or --storage) "
                   "or make it writable")
    data = cfg.data.resolved()
    assert data.cache_dir is not None
    check_writable(data.cache_dir, "cache folder", "point --cache-dir (or $VIDTUNE_CACHE) at a "
                   "writable folder")
    check_clip_size(cfg)
    try:
        arrays = load_arrays(data, progress=True)
    except StoreWriteError as exc:   # e.g. the disk filled while the cache was written
        raise ValueError(str(exc)) from None
    check_clips(arrays.labels, arrays.class_names, data)


def _exists(path: str) -> bool:
    if is_uri(path):
        import pyarrow.fs

        fs, base = filesystem(path)
        return fs.get_file_info(base).type != pyarrow.fs.FileType.NotFound
    return Path(path).exists()
