"""Video data: a synthetic temporal benchmark, real video folders and manifests, cached uint8
stores, loaders, augmentation, and the checks a data set must pass before a classifier trains.

Names are imported on first use, so a decoding process (vidtune.data.build) imports PyAV and
NumPy but not torch, which would add about 0.5 GB to each process's memory.

- config.py       DataConfig: the source, clip size, split, augmentation, decoding workers
- synthetic.py    the synthetic 10-class benchmark in which temporal order matters
- catalogue.py    a folder or manifest as clips (file, label, segment, split), split lists
- video_folder.py folders root/<class>/<video files>: layout, labels, files
- split.py        train/val splits: stratified and deterministic, or given by the data
- decode.py       decode_video: one video (or segment) into T frames, in bounded memory
- chunks.py       one chunk of a cache build, and decode_chunk that decodes it
- build.py        the cache built by processes, or by any runner (Ray tasks: trainable/tune)
- pool.py         the decoding processes, forked by a helper that imports no torch
- lock.py         one builder per cache; the others wait for it
- decode_report.py DecodeReport: what a build decoded and what it skipped, and why
- store.py        the cached uint8 store: clips.u8 (memory-mapped), labels, manifest
- arrays.py       VideoArrays: the in-memory form every source produces
- checks.py       what a labelled set of clips must hold before a classifier trains
- augment.py      label-keeping augmentation and the windows of the stored frames
- loaders.py      batches of float clips for training and evaluation
- device.py       the GPU data path: pinned uint8 batches, copied ahead and made float there
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidtune._lazy import lazy_names

if TYPE_CHECKING:
    from vidtune.data.arrays import VideoArrays
    from vidtune.data.checks import check_clips
    from vidtune.data.config import SYNTHETIC, DataConfig, default_cache_dir
    from vidtune.data.device import DeviceLoader, TimedLoader, on_device
    from vidtune.data.loaders import (
        ClipLoader,
        Loaders,
        MultiClipLoader,
        load_arrays,
        make_loaders,
        to_float,
    )
    from vidtune.data.split import stratified_split
    from vidtune.data.synthetic import CLASS_NAMES, make_synthetic, render_clip

_WHERE = {   # public name -> module under vidtune.data
    "CLASS_NAMES": "synthetic",
    "SYNTHETIC": "config",
    "ClipLoader": "loaders",
    "DataConfig": "config",
    "DeviceLoader": "device",
    "Loaders": "loaders",
    "MultiClipLoader": "loaders",
    "TimedLoader": "device",
    "VideoArrays": "arrays",
    "check_clips": "checks",
    "default_cache_dir": "config",
    "load_arrays": "loaders",
    "make_loaders": "loaders",
    "make_synthetic": "synthetic",
    "on_device": "device",
    "render_clip": "synthetic",
    "stratified_split": "split",
    "to_float": "loaders",
}

__all__ = [
    "CLASS_NAMES",
    "SYNTHETIC",
    "ClipLoader",
    "DataConfig",
    "DeviceLoader",
    "Loaders",
    "MultiClipLoader",
    "TimedLoader",
    "VideoArrays",
    "check_clips",
    "default_cache_dir",
    "load_arrays",
    "make_loaders",
    "make_synthetic",
    "on_device",
    "render_clip",
    "stratified_split",
    "to_float",
]


__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__, globals())
