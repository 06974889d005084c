"""What the driver checks before Ray starts: where the search writes, the clip size, the
encoder weights, the data.

A search whose every trial would fail for the same reason is refused here, in one line that
names the value and the fix (ValueError; the commands exit 2), instead of failing each trial
inside Ray. No Ray here.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import optuna

from vidtune.data import DataConfig, load_arrays
from vidtune.data.arrays import VideoArrays
from vidtune.data.catalogue import read_catalogue
from vidtune.data.config import weights_items
from vidtune.data.loaders import split_indices
from vidtune.data.store import StoreWriteError
from vidtune.search_spaces import SearchSpace, decode_widths, trace_space
from vidtune.trainable.core.config import ENCODERS, ModelConfig
from vidtune.trainable.core.encoders import TorchvisionEncoder, load_encoder_weights, weights_for
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.storage import filesystem, is_uri


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


def check_space_fits_clips(cfg: SearchConfig) -> None:
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


def space_encoders(space: SearchSpace) -> list[str]:
    """The per-frame encoders the space's trials can have, in ENCODERS order."""
    sampled = trace_space(space).sampled
    dist = sampled["encoder"].distribution if "encoder" in sampled else None
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        found = {str(c) for c in dist.choices}
    else:
        found = {str({**space.default, **space.constants}.get("encoder", ModelConfig().encoder))}
    return [e for e in ENCODERS if e in found]


def check_encoder_weights(cfg: SearchConfig) -> None:
    """--encoder-weights names local files that exist and fit the encoders the space can
    sample; a torchvision encoder without a file starts from random weights (a note says so)."""
    spec = cfg.data.encoder_weights
    backbones = [e for e in space_encoders(cfg.search_space()) if e != "conv"]
    label = cfg.space_label
    items = weights_items(spec)
    unknown = [name for name, _ in items if name and name not in backbones]
    if items and not backbones:
        raise ValueError(f"--encoder-weights is {spec!r}, but space {label!r} never uses a "
                         "torchvision encoder (its trials use the seed's conv blocks); drop "
                         "--encoder-weights or use a space that samples encoder, e.g. 'video'")
    if unknown:
        raise ValueError(f"--encoder-weights names {unknown[0]!r}, but space {label!r} uses "
                         f"the encoders {', '.join(backbones)}; write NAME=PATH with one of them")
    if sum(not name for name, _ in items) and len(backbones) > 1:
        raise ValueError(f"--encoder-weights is {spec!r}, but space {label!r} samples "
                         f"{' and '.join(backbones)}: say which file is whose, e.g. "
                         f"{backbones[0]}=PATH,{backbones[1]}=PATH")
    untrained = []
    for name in backbones:
        path = weights_for(spec, name)
        if path is None:
            untrained.append(name)
            continue
        load_encoder_weights(TorchvisionEncoder(name), path)   # ValueError naming the file
    if items and untrained:
        raise ValueError(f"space {label!r} samples encoder {untrained[0]}, but "
                         f"--encoder-weights ({spec}) has no file for it; add "
                         f"{untrained[0]}=PATH")
    if untrained:
        print(f"note: encoder {', '.join(untrained)} starts from random weights (no "
              "--encoder-weights)", file=sys.stderr)


def check_data(arrays: VideoArrays, data: DataConfig) -> None:
    """The clips can train a classifier: >= 2 classes, and a split with every class in
    training (data.loaders.split_indices: the random split's or the data's own)."""
    split_indices(arrays, data)


def preflight(cfg: SearchConfig, decode: bool = True) -> None:
    """All checks, cheapest first: the results and cache folders are writable, the clips fit
    the space's models, the encoder weights fit, the data's rows and split lists are sound,
    then the data (the cache is built here, with the decode report on stderr) can train a
    classifier (check_data). decode=False stops before decoding videos (on a cluster, Ray
    tasks decode them afterwards: trainable/tune/cluster_cache.py)."""
    check_results_writable(cfg)
    data = cfg.data.resolved()
    assert data.cache_dir is not None
    check_writable(data.cache_dir, "cache folder", "point --cache-dir (or $VIDTUNE_CACHE) at a "
                   "writable folder")
    check_space_fits_clips(cfg)
    check_encoder_weights(cfg)
    if not data.is_synthetic:
        read_catalogue(data.source, data.split_file)   # bad rows and split lines, by line
        if not decode:
            return
    try:
        arrays = load_arrays(data, progress=True)
    except StoreWriteError as exc:   # e.g. the disk filled while the cache was written
        raise ValueError(str(exc)) from None
    check_data(arrays, data)


def check_results_writable(cfg: SearchConfig) -> None:
    """The experiment folder, or the root it goes into, is writable (before its lease)."""
    target = cfg.experiment_path if _exists(cfg.experiment_path) else cfg.storage_root
    check_writable(target, "results folder", "choose another with --results-dir (or --storage) "
                   "or make it writable")


def _exists(path: str) -> bool:
    if is_uri(path):
        import pyarrow.fs

        fs, base = filesystem(path)
        return fs.get_file_info(base).type != pyarrow.fs.FileType.NotFound
    return Path(path).exists()
