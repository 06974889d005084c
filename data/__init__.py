"""Video data: a synthetic temporal benchmark, real video folders, cached uint8 stores, loaders,
and the checks a data set must pass before a classifier trains on it."""

from vidtune.data.arrays import VideoArrays
from vidtune.data.checks import check_clips
from vidtune.data.config import SYNTHETIC, DataConfig, default_cache_dir
from vidtune.data.device import DeviceLoader, TimedLoader, on_device
from vidtune.data.loaders import ClipLoader, Loaders, load_arrays, make_loaders, to_float
from vidtune.data.split import stratified_split
from vidtune.data.synthetic import CLASS_NAMES, make_synthetic, render_clip

__all__ = [
    "CLASS_NAMES",
    "SYNTHETIC",
    "ClipLoader",
    "DataConfig",
    "DeviceLoader",
    "Loaders",
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
