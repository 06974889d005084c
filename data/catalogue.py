"""A data source as a list of clips before anything is decoded: file, label, segment, split.

Two kinds of source:
- a folder root/<class>/<video files> (data.video_folder.scan_folder);
- a manifest: a CSV file with a header and the columns path,label[,split][,start,end]. Paths
  are relative to the manifest's folder (or absolute). start and end are seconds into the
  video, as Kinetics-style annotations have them, and cut a segment from it (either may be
  empty: from the start, to the end). split is train, val or test. Other columns are ignored.

Official split lists (--split-file) then set every clip's split:
- UCF101-style lists name their role in the file name: trainlist01.txt trains, testlist01.txt
  tests (a name with "val" validates). Lines are `class/video.avi` with an optional number
  after it (UCF101's class index, ignored).
- HMDB51-style <class>_test_split<k>.txt: lines `video.avi N`, N = 1 train, 2 test, 0 left out.
When the lists name training clips, clips that no list names are left out; when they name
only test (or val) clips, all the other clips train. Paths match the clips' paths relative to
the folder (or as the manifest writes them), exactly, else ignoring case, else by file name.

Bad rows and lines are refused before anything is decoded, all of them at once, each with its
file and line number: a missing file, an unknown split, start >= end, a label with no training
clips, a clip two lists disagree on.
"""

from __future__ import annotations

import csv
import glob
import math
import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidtune.data.config import split_list
from vidtune.data.decode import DECODE_VERSION, shown
from vidtune.data.split import SPLIT_CODES, SPLITS
from vidtune.data.video_folder import label_problem, scan_folder

COLUMNS = ("path", "label", "split", "start", "end")
MAX_SHOWN = 20                      # bad rows listed in one error; the rest are counted
HMDB = re.compile(r"^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$", re.IGNORECASE)
HMDB_TAGS = {"1": "train", "2": "test", "0": "unused"}
UNUSED = "unused"


@dataclass(frozen=True)
class Clip:
    """One clip of a source: a video file, or a segment [start, end) seconds of it."""

    path: Path                      # absolute
    name: str                       # as the source names it (relative path, posix)
    label: int
    start: float | None = None
    end: float | None = None
    split: str | None = None        # train, val, test or unused; None: the random split
    line: int = 0                   # its line in the manifest (0: from a folder)

    def shown(self) -> str:
        """How reports name it: the path, and the segment if it has one."""
        if self.start is None and self.end is None:
            return shown(self.name)
        start = 0.0 if self.start is None else self.start
        end = "end" if self.end is None else f"{self.end:g}"
        return f"{shown(self.name)} [{start:g}-{end} s]"


@dataclass(frozen=True)
class Catalogue:
    """The clips of a folder or manifest, with their class names (sorted), in source order."""

    source: Path                    # the folder or the manifest file
    root: Path                      # the folder paths are relative to
    clips: tuple[Clip, ...]
    class_names: tuple[str, ...]
    is_manifest: bool = False

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips], dtype=np.int64)   # (N,)

    @property
    def split_codes(self) -> np.ndarray | None:
        """(N,) int8 split codes, or None when the source gives no split (a random one is made)."""
        if all(c.split is None for c in self.clips):
            return None
        return np.array([SPLIT_CODES[c.split or "train"] for c in self.clips], dtype=np.int8)

    def cache_key(self, frames: int, height: int, width: int) -> dict[str, Any]:
        """What the decoded clips depend on: the files (path, size, mtime), their segments and,
        for a manifest, labels; T/H/W; the decoder's version. Not the split: a new split list
        reuses the cache."""
        listing: list[list[Any]] = []
        for clip in self.clips:
            try:
                stat = clip.path.stat()
                size, mtime = stat.st_size, stat.st_mtime_ns
            except OSError:   # a broken link: decoding reports it; a new target changes the key
                size, mtime = -1, -1
            row: list[Any] = [clip.name, size, mtime]
            if self.is_manifest:
                row += [clip.start, clip.end, self.class_names[clip.label]]
            listing.append(row)
        key: dict[str, Any] = {"source": str(self.source), "frames": int(frames),
                               "height": int(height), "width": int(width),
                               "decode_version": DECODE_VERSION, "files": listing}
        return {"kind": "manifest", **key} if self.is_manifest else key


class Problems:
    """Bad rows, collected so that one error lists them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, text: str) -> None:
        self.items.append(f"{where}: {text}")

    def check(self, head: str) -> None:
        """ValueError: `head`, then one bad row a line (the first MAX_SHOWN)."""
        if not self.items:
            return
        shown_items = self.items[:MAX_SHOWN]
        more = len(self.items) - len(shown_items)
        raise ValueError("\n".join([head, *(f"  {item}" for item in shown_items),
                                    *([f"  ... and {more} more"] if more else [])]))


def folder_catalogue(root: str | Path) -> Catalogue:
    """The clips of root/<class>/<video files> (scan_folder's checks and errors)."""
    root = Path(root).expanduser().resolve()
    files, class_names = scan_folder(root)
    clips = tuple(Clip(path, path.relative_to(root).as_posix(), label) for path, label in files)
    return Catalogue(root, root, clips, class_names)


def _seconds(text: str, column: str, problems: Problems, where: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.add(where, f"{column} {text!r} is not a number of seconds")
        return None
    if not math.isfinite(value) or value < 0:
        problems.add(where, f"{column} {text!r} must be a number of seconds >= 0")
        return None
    return value


def manifest_catalogue(manifest: str | Path) -> Catalogue:
    """The clips of a manifest CSV (see the module docstring). ValueError listing bad rows."""
    manifest = Path(manifest).expanduser().resolve()
    if not manifest.is_file():
        raise ValueError(f"manifest {manifest} does not exist; give a CSV file with the columns "
                         "path,label[,split][,start,end]")
    try:
        text = manifest.read_text(encoding="utf-8-sig")   # -sig: a spreadsheet's byte-order mark
    except UnicodeDecodeError as exc:
        line = manifest.read_bytes()[:exc.start].count(b"\n") + 1
        raise ValueError(f"manifest {manifest} is not UTF-8 text (line {line}); save it as UTF-8 "
                         "CSV") from None
    rows = list(csv.reader(text.splitlines(), skipinitialspace=True))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "path" not in header or "label" not in header:
        first = ",".join(rows[0]) if rows else ""
        raise ValueError(f"manifest {manifest} needs a header with the columns path and label "
                         f"(its first line is {first!r}); add the line "
                         "path,label[,split][,start,end] at the top")
    col = {name: header.index(name) for name in COLUMNS if name in header}
    problems = Problems()
    raw: list[tuple[int, str, str, float | None, float | None, str | None, Path]] = []
    seen: dict[tuple[Path, float | None, float | None], int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(field.strip() for field in row):
            continue
        where = f"{manifest.name}:{number}"
        if len(row) > len(header):
            problems.add(where, f"{len(row)} fields, but the header has {len(header)} (a comma "
                         "inside a name? quote the field)")
            continue

        def get(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        name, label = get("path"), get("label")
        if not name:
            problems.add(where, "no path")
            continue
        if not label:
            problems.add(where, f"{name}: no label")
            continue
        problem = label_problem(label)
        if problem:
            problems.add(where, f"label {label!r} {problem}")
            continue
        split: str | None = None
        if "split" in col:
            split = get("split").lower()
            if split not in SPLITS:
                problems.add(where, f"unknown split {get('split')!r}; use "
                             f"{', '.join(SPLITS)}")
                continue
        start = _seconds(get("start"), "start", problems, where)
        end = _seconds(get("end"), "end", problems, where)
        if start is not None and end is not None and start >= end:
            problems.add(where, f"start {start:g} s is not before end {end:g} s")
            continue
        path = Path(name).expanduser()
        path = path if path.is_absolute() else manifest.parent / path
        if not path.exists():
            problems.add(where, f"no such file {name}" + (
                " (a broken symbolic link)" if path.is_symlink() else ""))
            continue
        if path.is_dir():
            problems.add(where, f"{name} is a folder, not a video file")
            continue
        same = (path.resolve(), start, end)
        if same in seen:
            problems.add(where, f"repeats line {seen[same]} (the same file and segment)")
            continue
        seen[same] = number
        raw.append((number, posixpath.normpath(name.replace("\\", "/")), label, start, end,
                    split, path))
    problems.check(f"manifest {manifest} has {len(problems.items)} bad row(s); fix or remove "
                   "them:")
    if not raw:
        raise ValueError(f"manifest {manifest} lists no videos; add rows path,label below its "
                         "header")
    class_names = tuple(sorted({label for _, _, label, *_ in raw}))
    index = {name: i for i, name in enumerate(class_names)}
    clips = tuple(Clip(path, name, index[label], start, end, split, number)
                  for number, name, label, start, end, split, path in raw)
    catalogue = Catalogue(manifest, manifest.parent, clips, class_names, is_manifest=True)
    _check_training_clips(catalogue, f"manifest {manifest}")
    return catalogue


def _check_training_clips(catalogue: Catalogue, what: str) -> None:
    """Every label needs a training clip once the source gives a split."""
    codes = catalogue.split_codes
    if codes is None:
        return
    problems = Problems()
    labels = catalogue.labels
    for k, name in enumerate(catalogue.class_names):
        mine = np.flatnonzero(labels == k)
        if not (codes[mine] == SPLIT_CODES["train"]).any():
            splits = sorted({catalogue.clips[i].split or "" for i in mine})
            lines = [catalogue.clips[i].line for i in mine[:5] if catalogue.clips[i].line]
            at = f" (lines {', '.join(map(str, lines))}{' ...' if len(mine) > 5 else ''})" \
                if lines else ""
            problems.add(f"label {name!r}", f"no training clips: its {len(mine)} clip(s) are "
                         f"{'/'.join(splits)}{at}")
    problems.check(f"{what}: {len(problems.items)} label(s) have no training clip; give each "
                   "label at least one clip with split train:")


def _matcher(catalogue: Catalogue):
    """find(name) -> indices of the clips a split list's `name` means ([] if none)."""
    exact: dict[str, list[int]] = defaultdict(list)
    folded: dict[str, list[int]] = defaultdict(list)
    base: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(catalogue.clips):
        exact[clip.name].append(i)
        folded[clip.name.lower()].append(i)
        base[posixpath.basename(clip.name)].append(i)

    def find(name: str) -> list[int]:
        name = posixpath.normpath(name.replace("\\", "/"))
        found = exact.get(name) or folded.get(name.lower())
        if found:
            return found
        by_name = base.get(posixpath.basename(name), [])
        return by_name if len({catalogue.clips[i].name for i in by_name}) == 1 else []

    return find


def _list_files(spec: str) -> list[Path]:
    files: list[Path] = []
    for item in split_list(spec):
        if glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(str(Path(item).expanduser())))
            if not found:
                raise ValueError(f"split file pattern {item!r} matches no file; give the lists, "
                                 "e.g. ucfTrainTestlist/testlist01.txt")
            files += found
        else:
            path = Path(item).expanduser()
            if not path.is_file():
                raise ValueError(f"split file {item} does not exist; give the official lists, "
                                 "e.g. ucfTrainTestlist/trainlist01.txt,ucfTrainTestlist/"
                                 "testlist01.txt")
            files.append(path)
    return files


def _role(path: Path) -> str:
    """'hmdb', or the split a UCF101-style list gives every clip it names."""
    name = path.name.lower()
    if HMDB.match(path.name):
        return "hmdb"
    for word, role in (("train", "train"), ("test", "test"), ("val", "val")):
        if word in name:
            return role
    raise ValueError(f"split file {path} does not say what it lists: its name must contain "
                     "'train', 'test' or 'val' (as UCF101's trainlist01.txt and testlist01.txt "
                     "do), or be HMDB51's <class>_test_split<k>.txt; rename it")


def apply_split_files(catalogue: Catalogue, spec: str) -> Catalogue:
    """The catalogue with every clip's split set by the split lists in `spec` (comma-separated
    paths or globs). ValueError listing every bad line."""
    if catalogue.split_codes is not None:
        raise ValueError(f"manifest {catalogue.source} has a split column and --split-file is "
                         f"{spec!r}; use one of them")
    find = _matcher(catalogue)
    given: dict[int, tuple[str, str]] = {}   # clip -> (split, where)
    problems = Problems()
    for path in _list_files(spec):
        role = _role(path)
        hmdb = HMDB.match(path.name)
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"split file {path} cannot be read ({exc}); give a UTF-8 text "
                             "file") from None
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path.name}:{number}"
            tokens = text.split()
            name, tag = text, ""
            if len(tokens) > 1 and tokens[-1].isdigit():
                name, tag = text[: text.rindex(tokens[-1])].strip(), tokens[-1]
            split = role
            if hmdb:
                if tag not in HMDB_TAGS:
                    problems.add(where, f"{text!r} is not 'video.avi N' with N 0, 1 or 2 "
                                 "(HMDB51: 1 train, 2 test, 0 left out)")
                    continue
                split = HMDB_TAGS[tag]
                if "/" not in name:
                    name = f"{hmdb.group('cls')}/{name}"
            found = find(name)
            if not found:
                problems.add(where, f"{name} is not in {catalogue.source} (a missing video?)")
                continue
            for i in found:
                if i in given and given[i][0] != split:
                    problems.add(where, f"{name} is {split} here but {given[i][0]} at "
                                 f"{given[i][1]}")
                given.setdefault(i, (split, where))
    problems.check(f"split lists {spec} have {len(problems.items)} bad line(s); fix them or the "
                   "data:")
    if not given:
        raise ValueError(f"split lists {spec} name none of the clips of {catalogue.source}")
    rest = UNUSED if any(s == "train" for s, _ in given.values()) else "train"
    clips = tuple(replace(clip, split=given[i][0] if i in given else rest)
                  for i, clip in enumerate(catalogue.clips))
    out = replace(catalogue, clips=clips)
    _check_training_clips(out, f"split lists {spec}")
    return out


def read_catalogue(source: str | Path, split_file: str = "") -> Catalogue:
    """The catalogue of a folder or a manifest (.csv), with the split lists applied."""
    source = Path(source).expanduser()
    is_csv = source.suffix.lower() == ".csv"
    catalogue = manifest_catalogue(source) if is_csv else folder_catalogue(source)
    return apply_split_files(catalogue, split_file) if split_file else catalogue
