"""The clip cache of a folder or manifest: built once, by several processes or by Ray tasks.

The clips are cut into chunks. decode_chunk (data/chunks.py), a plain function, decodes one
chunk into its own part file in the store's temporary folder. It runs in any process, on any
node that sees the videos and the cache. A runner runs every chunk: process_runner uses one process per core on
this machine, and trainable/tune/cluster_cache.py runs the chunks as Ray tasks spread over a
cluster's nodes. The parts are then joined into clips.u8, and the store is sealed (its
manifest last, then one rename). Memory stays bounded: no process holds more than one clip
of the data set at a time.

One builder per store. The others wait for it (lock.BuildLock), then open what it built.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidtune.data.arrays import VideoArrays
from vidtune.data.catalogue import Catalogue
from vidtune.data.chunks import Chunk, ChunkResult, decode_chunk
from vidtune.data.config import default_cache_dir
from vidtune.data.decode import check_clip_size, shown
from vidtune.data.decode_report import DecodeReport
from vidtune.data.lock import BuildLock
from vidtune.data.pool import run_pool
from vidtune.data.store import (
    CLIPS,
    StoreWriteError,
    cache_write_error,
    new_build_folder,
    open_store,
    read_manifest,
    remove_stale_builds,
    seal_store,
)

REPORT_KEY = "decode_report"
CLIPS_KEY = "clips"           # the manifest's list of the catalogue's clips that decoded
MAX_CHUNK = 32                # videos a chunk at most
CHUNKS_PER_WORKER = 4         # for load balance and progress, when there are enough videos


# runner(chunks, done): run every chunk, calling done(result) as each one finishes.
Runner = Callable[[list[Chunk], Callable[[ChunkResult], None]], None]


def default_workers() -> int:
    """One decoding process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not Linux
        return max(1, os.cpu_count() or 1)


def process_runner(workers: int = 0) -> Runner:
    """Chunks decoded by `workers` processes (0: one per core), forked by a helper process
    that imports neither torch nor the caller's main script (data/pool.py); with one worker,
    or one chunk, in this process. Each process decodes with one FFmpeg thread: the processes
    fill the cores."""
    workers = workers or default_workers()

    def run(chunks: list[Chunk], done: Callable[[ChunkResult], None]) -> None:
        if workers == 1 or len(chunks) == 1:
            threads = 0 if workers > 1 else 1   # one chunk: FFmpeg's threads use the cores
            for chunk in chunks:
                done(decode_chunk(chunk, threads=threads))
            return
        run_pool(chunks, min(workers, len(chunks)), done)

    return run


class _Progress:
    """'decoding videos: 12/40 (30%) 3s' on stderr: rewritten in place on a tty, else every ~10%."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.stream = sys.stderr
        self.tty = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last_decile = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        percent = 100 * done // self.total
        line = (
            f"decoding videos: {done}/{self.total} ({percent}%) "
            f"{time.monotonic() - self.start:.0f}s"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == self.total else ""))
        elif percent // 10 > self.last_decile or done == self.total:
            self.last_decile = percent // 10
            self.stream.write(line + "\n")
        else:
            return
        self.stream.flush()


@dataclass(frozen=True)
class Source:
    """A catalogue, the clip size its cache holds, the cache key and where the store lives."""

    catalogue: Catalogue
    frames: int
    height: int
    width: int
    key: dict[str, Any]
    path: Path

    @property
    def clip_bytes(self) -> int:
        return self.frames * self.height * self.width * 3


def store_path(cache_dir: str | Path, catalogue: Catalogue, key: dict[str, Any]) -> Path:
    """Where the decoded store with `key` lives: <cache>/folders/<name>-<digest> (a folder) or
    <cache>/manifests/<name>-<digest> (a manifest)."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    stem = catalogue.source.stem if catalogue.is_manifest else catalogue.source.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "root"
    kind = "manifests" if catalogue.is_manifest else "folders"
    return Path(cache_dir).expanduser() / kind / f"{name}-{digest}"


def plan(catalogue: Catalogue, frames: int, height: int, width: int,
         cache_dir: str | Path | None) -> Source:
    check_clip_size(frames, height, width)
    key = catalogue.cache_key(frames, height, width)
    path = store_path(default_cache_dir() if cache_dir is None else cache_dir, catalogue, key)
    return Source(catalogue, frames, height, width, key, path)


def open_cached(source: Source) -> tuple[VideoArrays, DecodeReport] | None:
    """The store of `source` if it is complete and current, with the catalogue's split."""
    arrays = open_store(source.path, source.key)
    manifest = read_manifest(source.path)
    if arrays is None or manifest is None or REPORT_KEY not in manifest:
        return None
    splits = source.catalogue.split_codes
    if splits is not None:
        numbers = np.asarray(manifest.get(CLIPS_KEY, []), dtype=np.int64)   # (N,)
        if len(numbers) != len(arrays):
            return None
        arrays = replace(arrays, splits=splits[numbers])
    return arrays, DecodeReport.from_json(manifest[REPORT_KEY])


def make_chunks(source: Source, folder: Path, workers: int) -> list[Chunk]:
    clips = source.catalogue.clips
    size = max(1, min(MAX_CHUNK, math.ceil(len(clips) / (CHUNKS_PER_WORKER * max(1, workers)))))
    return [
        Chunk(k, tuple((i, str(clips[i].path), clips[i].start, clips[i].end)
                       for i in range(first, min(first + size, len(clips)))),
              source.frames, source.height, source.width, str(folder / f"part-{k:06d}.u8"),
              str(source.catalogue.root))
        for k, first in enumerate(range(0, len(clips), size))
    ]


def _check_enough(labels: np.ndarray, class_names: tuple[str, ...], min_clips_per_class: int,
                  report: DecodeReport, source: Path) -> None:
    counts = np.bincount(labels, minlength=len(class_names))  # (num_classes,)
    short = [f"{name} ({n})" for name, n in zip(class_names, counts, strict=True)
             if n < min_clips_per_class]
    # One line that names the source, the classes and the fix; the decode report below it.
    if short:
        have = "no readable clip" if min_clips_per_class == 1 else (
            f"fewer than {min_clips_per_class} readable clips")
        raise ValueError(
            f"in {shown(source)}, these classes have {have}: {', '.join(map(shown, short))}; add "
            f"videos to those classes or fix the unreadable files listed below\n"
            f"{report.summary()}")
    if len(labels) < 2:
        raise ValueError(
            f"in {shown(source)}, only {len(labels)} readable clip(s) remain, but at least 2 are "
            f"needed; add videos or fix the unreadable files listed below\n{report.summary()}")


def _join(parts: list[Path], out: Path) -> None:
    """Concatenate the part files into `out` (copied in the kernel where it can), removing each."""
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
            part.unlink()


def build(source: Source, runner: Runner, workers: int, progress: bool = True,
          min_clips_per_class: int = 1) -> tuple[VideoArrays, DecodeReport]:
    """Decode every clip of `source` with `runner` and write its store. Call it holding the
    store's BuildLock. StoreWriteError if the cache cannot be written; ValueError (with the
    decode report) if too few clips decode; nothing is left behind either way."""
    catalogue = source.catalogue
    nbytes = len(catalogue.clips) * source.clip_bytes
    try:
        remove_stale_builds(source.path)
        folder = new_build_folder(source.path)
    except OSError as exc:
        raise cache_write_error(exc, source.path, nbytes) from exc
    try:
        (folder / "parts").mkdir()
        chunks = make_chunks(source, folder / "parts", workers)
        meter = _Progress(len(catalogue.clips), progress)
        results: dict[int, ChunkResult] = {}
        count = 0

        def done(result: ChunkResult) -> None:
            nonlocal count
            results[result.index] = result
            count += len(chunks[result.index].videos)
            meter.update(count)

        runner(chunks, done)
        ordered = [results[k] for k in range(len(chunks))]
        numbers = [n for r in ordered for n in r.decoded]
        reasons = {n: reason for r in ordered for n, reason in r.errors}
        report = DecodeReport(
            decoded=len(numbers),
            skipped=tuple((catalogue.clips[n].shown(), reasons[n]) for n in sorted(reasons)),
            num_classes=len(catalogue.class_names))
        labels = catalogue.labels[np.asarray(numbers, dtype=np.int64)]   # (N,)
        _check_enough(labels, catalogue.class_names, min_clips_per_class, report,
                      catalogue.source)
        if report.skipped and progress:
            print(report.summary(), file=sys.stderr, flush=True)
        _join([Path(c.part) for c in chunks], folder / CLIPS)
        (folder / "parts").rmdir()
        shape = (len(numbers), source.frames, source.height, source.width, 3)
        seal_store(folder, source.path, shape, labels, catalogue.class_names, source.key,
                   extra={REPORT_KEY: report.to_json(), CLIPS_KEY: numbers})
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, StoreWriteError):
            raise cache_write_error(exc, source.path, nbytes) from exc
        raise
    cached = open_cached(source)
    if cached is None:
        raise StoreWriteError(0, f"the clip cache {source.path} was written but cannot be read "
                              "back; check the disk, or point --cache-dir elsewhere")
    return cached


def _tidy(path: Path) -> None:
    """Remove the cache's kind folder (e.g. <cache>/folders) if a failed build left it empty."""
    try:
        path.parent.rmdir()
    except OSError:
        pass


class CacheMissingError(ValueError):
    """A trial found no clip cache: the search builds it before trials start."""


def load_source(catalogue: Catalogue, frames: int, height: int, width: int,
                cache_dir: str | Path | None, progress: bool = True, workers: int = 0,
                min_clips_per_class: int = 1, decode: bool = True,
                runner: Runner | None = None) -> tuple[VideoArrays, DecodeReport]:
    """The clips of a catalogue, `frames` per clip, from its cache; built first if missing.

    A build another process is running is waited for, then opened. decode=False: never
    decode (a trial), CacheMissingError instead. runner: how the chunks are run (default:
    process_runner(workers)).
    """
    source = plan(catalogue, frames, height, width, cache_dir)
    cached = open_cached(source)
    if cached is not None:
        return cached
    workers = workers or default_workers()
    try:
        lock = BuildLock(source.path, progress=progress)
        lock.acquire()
    except OSError as exc:
        raise cache_write_error(exc, source.path,
                                len(catalogue.clips) * source.clip_bytes) from exc
    try:
        cached = open_cached(source)   # built while we waited
        if cached is not None:
            return cached
        if not decode:
            raise CacheMissingError(
                f"no clip cache of {catalogue.source} at {source.path} on {socket.gethostname()}; "
                "the search decodes the videos before the trials start, so every node must see "
                "that cache: point --cache-dir at a folder all nodes share")
        return build(source, runner or process_runner(workers), workers, progress,
                     min_clips_per_class)
    finally:
        lock.release()
        if not source.path.exists():
            _tidy(source.path)
