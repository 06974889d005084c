"""Real video folders root/<class_name>/<video files>, decoded once with PyAV into the cached store.

`decode_video` is the single source of truth for preprocessing: training data (through
`load_video_folder`) and single-file prediction both go through it, so a clip always means
"`frames` frames uniformly sampled over the whole video, resized to height x width, RGB uint8".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidtune.data.arrays import VideoArrays
from vidtune.data.config import default_cache_dir
from vidtune.data.store import open_store, read_manifest, write_store

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .avi .webm .mkv .mov .m4v .gif .mpg .mpeg .ogv .wmv .flv".split()
)  # matched case-insensitively
DECODE_VERSION = 1  # bump when decode_video's output changes, so cached stores are rebuilt
LAYOUT = "root/<class_name>/<video files>, e.g. root/walking/clip01.mp4"
_REPORT_KEY = "decode_report"


class VideoDecodeError(Exception):
    """A video file that could not be turned into a clip; `reason` is short and human."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class DecodeReport:
    """What decoding a folder gave: how many clips, and which files were skipped and why."""

    decoded: int
    skipped: tuple[tuple[str, str], ...] = ()  # (path relative to the root, reason)
    num_classes: int | None = None

    def summary(self) -> str:
        in_classes = f" in {self.num_classes} classes" if self.num_classes is not None else ""
        head = f"decoded {self.decoded} videos{in_classes}"
        if not self.skipped:
            return head
        noun = "file" if len(self.skipped) == 1 else "files"
        lines = [f"{head}; skipped {len(self.skipped)} unreadable {noun}:"]
        lines += [f"  {shown(path)}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "decoded": self.decoded,
            "skipped": [list(item) for item in self.skipped],
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecodeReport:
        return cls(
            decoded=int(data["decoded"]),
            skipped=tuple((str(p), str(r)) for p, r in data.get("skipped", [])),
            num_classes=data.get("num_classes"),
        )


def shown(path: str | Path) -> str:
    """A file name as text that prints anywhere: bytes that are not UTF-8 become \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _check_clip_size(frames: int, height: int, width: int) -> None:
    for name, value in (("frames", frames), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} is {value!r}, but must be an integer >= 1")


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's message without the errno and file name PyAV wraps it in."""
    message = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(message).strip()


def sample_indices(available: int, frames: int) -> np.ndarray:
    """`frames` indices spread uniformly over [0, available); repeated if available < frames."""
    if available < 1:
        raise ValueError(f"available is {available}, but must be >= 1 to sample frames from")
    return np.rint(np.linspace(0, available - 1, frames)).astype(np.int64)  # (frames,)


def decode_video(path: str | Path, frames: int, height: int, width: int) -> np.ndarray:
    """Decode a video file into (frames, height, width, 3) uint8 RGB.

    Every frame of the first video stream is decoded and resized to height x width while
    decoding; then `frames` of them are sampled uniformly over the whole video (indices repeat
    when the video is shorter). Raises VideoDecodeError for anything unreadable.
    """
    _check_clip_size(frames, height, width)
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise VideoDecodeError(path, f"broken symbolic link (to {shown(os.readlink(path))})")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise VideoDecodeError(path, f"cannot read file ({error.strerror or error})") from None
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")

    decoded: list[np.ndarray] = []  # each (height, width, 3)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            stream = container.streams.video[0]
            reformatter = VideoReformatter()  # one swscale context for the whole video
            for frame in container.decode(stream):
                rgb = reformatter.reformat(
                    frame, width=width, height=height, format="rgb24", interpolation="AREA"
                )
                decoded.append(rgb.to_ndarray())
    except VideoDecodeError:
        raise
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoDecodeError(path, f"decoding failed: {_ffmpeg_reason(error)}") from None
    if not decoded:
        raise VideoDecodeError(path, "no frames decoded")
    clip = np.stack([decoded[i] for i in sample_indices(len(decoded), frames)])  # (T, H, W, 3)
    return np.ascontiguousarray(clip, dtype=np.uint8)


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def check_label(name: str, root: Path) -> None:
    """A class folder's name becomes a label in reports, config.json and predictions: it must
    be UTF-8, without control characters or whitespace at either end. ValueError otherwise."""
    try:
        name.encode("utf-8")
        problem = ""
    except UnicodeEncodeError:   # os.listdir gives undecodable bytes as lone surrogates
        problem = "is not valid UTF-8"
    if not problem and any(unicodedata.category(c) == "Cc" for c in name):
        problem = "contains control characters"
    if not problem and name != name.strip():
        problem = "starts or ends with whitespace"
    if problem:
        readable = os.fsencode(name).decode("utf-8", "replace")
        suggestion = re.sub(r"[^\w.+-]+", "_", readable.strip()).strip("_") or "class_1"
        raise ValueError(f"class folder {shown(name)!r} in {shown(root)} is not a valid label: its "
                         f"name {problem}; rename the folder, e.g. to {suggestion!r}")


def _class_dirs(root: Path) -> list[Path]:
    """The non-hidden subfolders of root, sorted; symbolic links to folders count as folders."""
    found: list[Path] = []
    targets: dict[Path, str] = {}
    for p in sorted(root.iterdir(), key=lambda p: p.name):
        if _is_hidden(p):
            continue
        if p.is_symlink() and not p.exists():
            raise ValueError(f"class folder {shown(p)} is a broken symbolic link (to "
                             f"{shown(os.readlink(p))}); fix the link or remove it")
        if not p.is_dir():
            continue
        check_label(p.name, root)
        target = p.resolve()
        if target in targets:
            raise ValueError(f"class folders {targets[target]!r} and {p.name!r} in {shown(root)} are "
                             f"the same folder ({shown(target)}), so their videos would get two "
                             "labels; remove one of them")
        targets[target] = p.name
        found.append(p)
    return found


def scan_folder(root: str | Path) -> tuple[list[tuple[Path, int]], tuple[str, ...]]:
    """List root/<class_name>/<video files> as ([(file, label), ...], class_names), sorted.

    Class names are the sorted non-hidden subfolder names (symbolic links to folders
    included), each a valid label (check_label); files with other extensions (and hidden
    files) are ignored, but a class folder with no video file is an error. A broken link with
    a video extension is kept, so the decode report lists it.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise ValueError(f"video folder {root} does not exist; expected the layout {LAYOUT}")
    if not root.is_dir():
        hint = (f"; to classify one video use `vidtune predict MODEL {root}`"
                if root.suffix.lower() in VIDEO_EXTENSIONS else "")
        raise ValueError(f"video folder {root} is not a directory but a file; give the folder "
                         f"that holds one subfolder per class ({LAYOUT}){hint}")
    class_dirs = _class_dirs(root)
    if not class_dirs:
        raise ValueError(
            f"video folder {root} has no class subfolders; expected the layout {LAYOUT}"
        )
    files: list[tuple[Path, int]] = []
    for label, class_dir in enumerate(class_dirs):
        videos = sorted(
            (
                p
                for p in class_dir.iterdir()
                if (p.is_file() or p.is_symlink()) and not p.is_dir() and not _is_hidden(p)
                and p.suffix.lower() in VIDEO_EXTENSIONS
            ),
            key=lambda p: p.name,
        )
        if not videos:
            raise ValueError(
                f"class folder {class_dir} contains no video files "
                f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))}); "
                f"add videos to it or remove it; expected the layout {LAYOUT}"
            )
        files += [(video, label) for video in videos]
    return files, tuple(p.name for p in class_dirs)


def _cache_key(
    root: Path, files: list[tuple[Path, int]], frames: int, height: int, width: int
) -> dict[str, Any]:
    listing = []
    for path, _ in files:
        try:
            stat = path.stat()
            listing.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
        except OSError:   # a broken link: decoding reports it; a new target changes the key
            listing.append([path.relative_to(root).as_posix(), -1, -1])
    return {
        "source": str(root),
        "frames": int(frames),
        "height": int(height),
        "width": int(width),
        "decode_version": DECODE_VERSION,
        "files": listing,
    }


def store_path(cache_dir: str | Path, root: Path, key: dict[str, Any]) -> Path:
    """Where the decoded store for `root` with `key` lives."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", root.name).strip("._") or "root"
    return Path(cache_dir).expanduser() / "folders" / f"{name}-{digest}"


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


def _decode_all(
    files: list[tuple[Path, int]], frames: int, height: int, width: int, progress: bool
) -> tuple[np.ndarray, list[str | None]]:
    """Decode every file into one (n_files, T, H, W, 3) array; errors[i] is None or a reason."""
    clips = np.empty((len(files), frames, height, width, 3), dtype=np.uint8)  # (N, T, H, W, 3)
    errors: list[str | None] = [None] * len(files)
    meter = _Progress(len(files), progress)

    def work(i: int) -> None:
        try:
            clips[i] = decode_video(files[i][0], frames, height, width)
        except VideoDecodeError as error:
            errors[i] = error.reason

    workers = max(1, min(os.cpu_count() or 1, len(files)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, i) for i in range(len(files))]
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()
            meter.update(done)
    return clips, errors


def load_video_folder(
    root: str | Path,
    frames: int,
    height: int,
    width: int,
    cache_dir: str | Path | None,
    min_clips_per_class: int = 1,
    progress: bool = True,
) -> tuple[VideoArrays, DecodeReport]:
    """Clips of every video under root/<class_name>/, decoded once and cached in `cache_dir`.

    The cache is keyed by the folder's absolute path, T/H/W and every file's
    (relative path, size, mtime), so adding, removing or changing a file rebuilds it.
    Unreadable files are skipped and listed in the report (printed to stderr when decoding).
    cache_dir None means default_cache_dir().
    """
    _check_clip_size(frames, height, width)
    if isinstance(min_clips_per_class, bool) or min_clips_per_class < 1:
        raise ValueError(f"min_clips_per_class is {min_clips_per_class!r}, but must be >= 1")
    root = Path(root).expanduser().resolve()
    files, class_names = scan_folder(root)
    key = _cache_key(root, files, frames, height, width)
    path = store_path(default_cache_dir() if cache_dir is None else cache_dir, root, key)

    cached = _open_cached(path, key)
    if cached is not None:
        return cached

    clips, errors = _decode_all(files, frames, height, width, progress)
    ok = np.array([e is None for e in errors], dtype=bool)  # (n_files,)
    report = DecodeReport(
        decoded=int(ok.sum()),
        skipped=tuple(
            (path_.relative_to(root).as_posix(), reason)
            for (path_, _), reason in zip(files, errors, strict=True)
            if reason is not None
        ),
        num_classes=len(class_names),
    )
    labels = np.array([label for _, label in files], dtype=np.int64)[ok]  # (N,)
    _check_enough(labels, class_names, min_clips_per_class, report, root)  # its error holds the report
    if report.skipped and progress:
        print(report.summary(), file=sys.stderr, flush=True)
    arrays = VideoArrays(
        clips=clips if ok.all() else clips[ok], labels=labels, class_names=class_names
    )
    try:
        write_store(path, arrays, key, extra={_REPORT_KEY: report.to_json()})
    except OSError:
        # Another process (e.g. a parallel trial) may have just written the same store.
        cached = _open_cached(path, key)
        if cached is None:
            raise
        return cached
    cached = _open_cached(path, key)
    return cached if cached is not None else (arrays, report)


def _open_cached(path: Path, key: dict[str, Any]) -> tuple[VideoArrays, DecodeReport] | None:
    arrays = open_store(path, key)
    manifest = read_manifest(path)
    if arrays is None or manifest is None or _REPORT_KEY not in manifest:
        return None
    return arrays, DecodeReport.from_json(manifest[_REPORT_KEY])


def _check_enough(
    labels: np.ndarray,
    class_names: tuple[str, ...],
    min_clips_per_class: int,
    report: DecodeReport,
    root: Path,
) -> None:
    counts = np.bincount(labels, minlength=len(class_names))  # (num_classes,)
    short = [
        f"{name} ({n})"
        for name, n in zip(class_names, counts, strict=True)
        if n < min_clips_per_class
    ]
    # One line that names the folder, the classes and the fix; the decode report below it.
    if short:
        have = "no readable clip" if min_clips_per_class == 1 else (
            f"fewer than {min_clips_per_class} readable clips")
        raise ValueError(
            f"in {shown(root)}, these classes have {have}: {', '.join(map(shown, short))}; add "
            f"videos to those class folders or fix the unreadable files listed below\n"
            f"{report.summary()}"
        )
    if len(labels) < 2:
        raise ValueError(
            f"in {shown(root)}, only {len(labels)} readable clip(s) remain, but at least 2 are "
            f"needed; add videos or fix the unreadable files listed below\n{report.summary()}"
        )
