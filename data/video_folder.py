"""Real video folders root/<class_name>/<video files>: their layout, labels and files.

The videos are decoded by data.decode.decode_video (the single source of truth for
preprocessing, which `vidtune predict` uses too) into a cached store by data.build, through
the folder's catalogue (data.catalogue.folder_catalogue).
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from vidtune.data.decode import (
    DECODE_VERSION,
    VideoDecodeError,
    decode_video,
    sample_indices,
    shown,
)
from vidtune.data.decode_report import DecodeReport

__all__ = [
    "DECODE_VERSION",
    "LAYOUT",
    "VIDEO_EXTENSIONS",
    "DecodeReport",
    "VideoDecodeError",
    "check_label",
    "decode_video",
    "label_problem",
    "sample_indices",
    "scan_folder",
    "shown",
]

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .avi .webm .mkv .mov .m4v .gif .mpg .mpeg .ogv .wmv .flv".split()
)  # matched case-insensitively
LAYOUT = "root/<class_name>/<video files>, e.g. root/walking/clip01.mp4"


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def label_problem(name: str) -> str:
    """Why `name` cannot be a label ("" if it can): labels appear in reports, config.json and
    predictions, so they must be UTF-8 without control characters or whitespace at either end."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:   # os.listdir gives undecodable bytes as lone surrogates
        return "is not valid UTF-8"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "contains control characters"
    if name != name.strip():
        return "starts or ends with whitespace"
    return ""


def suggest_label(name: str) -> str:
    """A valid label close to `name`."""
    readable = os.fsencode(name).decode("utf-8", "replace")
    return re.sub(r"[^\w.+-]+", "_", readable.strip()).strip("_") or "class_1"


def check_label(name: str, root: Path) -> None:
    """A class folder's name becomes a label: ValueError unless label_problem(name) is ""."""
    problem = label_problem(name)
    if problem:
        raise ValueError(f"class folder {shown(name)!r} in {shown(root)} is not a valid label: its "
                         f"name {problem}; rename the folder, e.g. to {suggest_label(name)!r}")


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
