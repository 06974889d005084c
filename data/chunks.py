"""One chunk of a cache build: the videos one worker decodes into one part file, what it
gave back, and decode_chunk, the plain function that does it. Below the runners that run
chunks: data/build.py (one process), data/pool.py (processes) and trainable/tune/cluster_cache.py
(Ray tasks), which all import it."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from vidtune.data.decode import VideoDecodeError, decode_video


@dataclass(frozen=True)
class Chunk:
    """Videos for one worker: (clip number, path, start, end), decoded into `part`."""

    index: int
    videos: tuple[tuple[int, str, float | None, float | None], ...]
    frames: int
    height: int
    width: int
    part: str                 # the part file to write, in the store's temporary folder
    data_root: str            # the folder the videos are in: checked where the chunk runs


@dataclass(frozen=True)
class ChunkResult:
    """What a chunk gave: the clips its part holds, in order, and the ones it skipped."""

    index: int
    decoded: tuple[int, ...]
    errors: tuple[tuple[int, str], ...]     # (clip number, reason)
    host: str
    pid: int
    seconds: float
    node: str = ""                          # the Ray node, where a Ray task ran it


class CacheNotSharedError(ValueError):
    """A chunk ran where the cache or the videos are not visible (a cluster node)."""


def decode_chunk(chunk: Chunk, threads: int = 1) -> ChunkResult:
    """Decode every video of `chunk` into its part file (clips back to back, raw uint8).

    Unreadable videos are skipped and named in the result. OSError: the part could not be
    written (a full disk); CacheNotSharedError: this node cannot see the cache or the videos.
    """
    t0 = time.perf_counter()
    host = socket.gethostname()
    folder = Path(chunk.part).parent
    if not folder.is_dir():
        raise CacheNotSharedError(
            f"{host} cannot see the cache folder {folder.parent.parent}: the cache must be a "
            "folder every node shares; point --cache-dir (or $VIDTUNE_CACHE) at shared storage")
    if not Path(chunk.data_root).is_dir():
        raise CacheNotSharedError(
            f"{host} cannot see the videos in {chunk.data_root}: on a cluster the data must be "
            "in a folder every node shares, at the same path")
    decoded: list[int] = []
    errors: list[tuple[int, str]] = []
    tmp = f"{chunk.part}.tmp"
    with open(tmp, "wb") as out:
        for number, path, start, end in chunk.videos:
            try:
                clip = decode_video(path, chunk.frames, chunk.height, chunk.width, start, end,
                                    threads=threads)
            except VideoDecodeError as error:
                errors.append((number, error.reason))
                continue
            out.write(clip.data)   # (T, H, W, 3) contiguous
            decoded.append(number)
    os.replace(tmp, chunk.part)   # a retried chunk (a lost node) writes it again whole
    return ChunkResult(chunk.index, tuple(decoded), tuple(errors), host, os.getpid(),
                       time.perf_counter() - t0)
