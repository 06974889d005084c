"""A cached uint8 array store: clips.u8 (raw, memory-mapped) + labels.npy + manifest.json.

Written atomically (to a temp dir, then renamed), so an interrupted build never leaves a
store that looks complete. The manifest carries a `key` describing what the store was built
from; a reader that asks for a different key gets None and rebuilds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vidtune.data.arrays import VideoArrays

MANIFEST = "manifest.json"
CLIPS = "clips.u8"
LABELS = "labels.npy"
FORMAT_VERSION = 1


class StoreWriteError(OSError):
    """The store could not be written (disk full, read-only, no permission). Nothing of it is
    left behind: the store is absent, or complete from an earlier or a parallel build."""

    def __str__(self) -> str:   # the message alone, without OSError's "[Errno 28]"
        return str(self.strerror)


def cache_write_error(exc: OSError, path: str | Path, nbytes: int) -> StoreWriteError:
    """The OSError of writing the store at `path` as a StoreWriteError naming the fix."""
    if isinstance(exc, StoreWriteError):
        return exc
    return StoreWriteError(
        exc.errno, f"cannot write the clip cache {path} ({exc.strerror or exc}); free "
        f"{nbytes / 2**20:.0f} MB there or point --cache-dir (or $VIDTUNE_CACHE) at a writable "
        "disk with room")


def write_store(path: str | Path, arrays: VideoArrays, key: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write `arrays` to `path` atomically, recording `key` (what it was built from).

    StoreWriteError, naming the folder and the fix, if it cannot be written.
    """
    path = Path(path)
    try:
        return _write_store(path, arrays, key, extra)
    except StoreWriteError:
        raise
    except OSError as exc:
        raise cache_write_error(exc, path, arrays.clips.nbytes) from exc


def _write_store(path: Path, arrays: VideoArrays, key: dict[str, Any], extra: dict[str, Any] | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        with open(tmp / CLIPS, "wb") as f:   # not ndarray.tofile: its short write has no errno
            f.write(np.ascontiguousarray(arrays.clips).data)
        return seal_store(tmp, path, arrays.clips.shape, arrays.labels, arrays.class_names, key,
                          extra)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def new_build_folder(path: str | Path) -> Path:
    """An empty temporary folder beside the store `path`, to write a store into; seal_store
    turns it into the store."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))


def remove_stale_builds(path: str | Path) -> None:
    """Remove the temporary folders of earlier builds of the store `path` that never finished
    (a killed builder). Call it only while holding the store's BuildLock."""
    path = Path(path)
    for old in path.parent.glob(f".{path.name}.*"):
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)


def seal_store(tmp: Path, path: Path, shape: tuple[int, ...], labels: np.ndarray,
               class_names: tuple[str, ...], key: dict[str, Any],
               extra: dict[str, Any] | None = None) -> Path:
    """Finish the store in `tmp`, whose clips.u8 holds `shape`: labels, then the manifest, then
    one rename to `path`. Removes `tmp` if anything fails."""
    try:
        np.save(tmp / LABELS, np.asarray(labels, dtype=np.int64))
        manifest = {
            "format_version": FORMAT_VERSION,
            "key": key,
            "shape": [int(n) for n in shape],
            "class_names": list(class_names),
            **(extra or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        try:
            os.replace(tmp, path)
        except OSError:
            # `path` exists: another process (a parallel trial) may have just built the same store.
            if open_store(path, key) is not None:
                shutil.rmtree(tmp, ignore_errors=True)
                return path
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The store's manifest, or None when there is no complete store at `path`."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        return None
    return manifest


def open_store(path: str | Path, key: dict[str, Any] | None = None) -> VideoArrays | None:
    """Open the store memory-mapped (read-only). None if absent, incomplete or built from another key."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None or (key is not None and manifest["key"] != json.loads(json.dumps(key))):
        return None
    shape = tuple(manifest["shape"])
    expected = int(np.prod(shape))
    try:
        if (path / CLIPS).stat().st_size != expected:
            return None
        clips = np.memmap(path / CLIPS, dtype=np.uint8, mode="r", shape=shape) if expected else np.zeros(shape, np.uint8)
        labels = np.load(path / LABELS)
    except (OSError, ValueError):
        return None
    return VideoArrays(clips=clips, labels=labels, class_names=tuple(manifest["class_names"]))
