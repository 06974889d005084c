"""Helpers for the tests: real videos encoded with PyAV, small real filesystems (tmpfs mounts)
that are read-only or fill up, the `vidtune` command in a subprocess, what a running search
has written to its trials' progress.csv files, and the moment after its next snapshot."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pytest

from vidtune.data.arrays import VideoArrays
from vidtune.data.build import load_source
from vidtune.data.catalogue import folder_catalogue
from vidtune.data.decode_report import DecodeReport

W, H = 32, 24


def encode_video(path: Path | bytes, frames: int = 10, color: tuple[int, int, int] = (200, 40, 40)) -> None:
    """A small MPEG-4 AVI: a square of `color` moving right over a dark background."""
    Path(os.fsdecode(path)).parent.mkdir(parents=True, exist_ok=True)
    with av.open(os.fsdecode(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            frame = np.full((H, W, 3), 40, dtype=np.uint8)  # (H, W, 3)
            frame[6:18, i % (W - 12) : i % (W - 12) + 12] = color
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def video_folder(root: Path, counts: dict[str, int]) -> Path:
    """root/<class>/v<i>.avi with counts[class] videos each, one color per class."""
    colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            encode_video(root / name / f"v{i}.avi", frames=8 + i, color=colors[k % len(colors)])
    return root


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of `size` mounted at path (root only; skips where mounting is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def vidtune(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`vidtune ARGS` in a fresh interpreter, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def in_process(capfd: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    """`vidtune ARGS` run by cli.main in this process: its exit status and what it printed."""
    from vidtune.scripts.cli import main

    capfd.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out = capfd.readouterr()
    return subprocess.CompletedProcess(["vidtune", *args], code, out.out, out.err)


def load_folder(root: Path, frames: int, height: int, width: int, cache_dir: Path | None,
                **kwargs: Any) -> tuple[VideoArrays, DecodeReport]:
    """A video folder's clips, decoded once into the cache, as `--data FOLDER` loads them."""
    return load_source(folder_catalogue(root), frames, height, width, cache_dir, **kwargs)


def progress(experiment: str | Path) -> dict[str, pd.DataFrame]:
    """Each trial folder's progress.csv rows (a file being written may not parse yet: skipped)."""
    out = {}
    for csv in sorted(Path(experiment).glob("trial_*/progress.csv")):
        try:
            df = pd.read_csv(csv, dtype={"node_id": str})
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if len(df):
            out[csv.parent.name] = df
    return out


def after_next_snapshot(proc: subprocess.Popen, experiment: Path, timeout: float = 15) -> None:
    """Wait until Tune has saved an experiment snapshot after this moment. A killed driver loses
    at most what happened since its last snapshot (every 2 s, docs/scaling.md): a trial created
    in that window is not in the snapshot, and the resumed search creates another in its place."""
    since = time.time()
    deadline = since + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(f.stat().st_mtime > since for f in experiment.glob("experiment_state-*.json")):
            return
        time.sleep(0.1)
