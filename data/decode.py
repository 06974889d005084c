"""decode_video: a video file, or a segment of it, as (frames, height, width, 3) uint8 RGB.

The single source of truth for preprocessing: the cached stores and `vidtune predict` both
decode through it. Memory stays bounded and decoding stops early, whatever the video's length:

1. The demux pass reads the presentation time of every frame from the packets (nothing is
   decoded) and notes the keyframes. This works for variable frame rates, and for streams whose
   container records no duration or frame count.
2. The sample times are `frames` times spread uniformly from the first frame to the last (of
   the video, or of the segment [start, end) seconds); each takes the frame nearest to it,
   so a short video repeats frames. At a constant frame rate this is the frame index
   rint(linspace(0, n - 1, frames)). A tie between two frames goes to the earlier one.
3. The decode pass decodes up to the wanted frames only. Where a keyframe lies between the
   decoder's position and the next wanted frame, it seeks there instead of decoding everything
   in between. Only the wanted frames are resized (to height x width, RGB) and kept. If a seek
   lands past its frame (a broken index), the video is decoded again from the start without
   seeking.

Rotation metadata (a display matrix, as phones write it) is applied, so height x width is
the orientation a player shows.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

DECODE_VERSION = 2  # bump when decode_video's output changes, so cached stores are rebuilt


class VideoDecodeError(Exception):
    """A video file that could not be turned into a clip; `reason` is short and human."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def shown(path: str | Path) -> str:
    """A file name as text that prints anywhere: bytes that are not UTF-8 become \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_clip_size(frames: int, height: int, width: int) -> None:
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


def nearest_times(times: np.ndarray, frames: int) -> np.ndarray:
    """For `frames` times spread uniformly over [times[0], times[-1]], the index of the nearest
    of `times` (integer timestamps, ascending); a tie goes to the earlier one. (frames,) int64.

    Exact: target i is times[0] + span * i / (frames - 1), so everything is scaled by
    (frames - 1) and compared in integers, where a tie is a tie."""
    if len(times) < 1:
        raise ValueError("times is empty, but must hold at least one frame time")
    t = np.asarray(times, dtype=np.int64) - int(times[0])
    scale = max(frames - 1, 1)
    scaled = t * scale                                                   # (n,)
    targets = int(t[-1]) * np.arange(frames, dtype=np.int64)             # (frames,), scaled
    if frames == 1:
        targets = np.zeros(1, dtype=np.int64)
    after = np.clip(np.searchsorted(scaled, targets, side="left"), 0, len(t) - 1)
    before = np.clip(after - 1, 0, len(t) - 1)
    take_before = np.abs(targets - scaled[before]) <= np.abs(scaled[after] - targets)
    return np.where(take_before, before, after).astype(np.int64)


@dataclass(frozen=True)
class FrameIndex:
    """What the demux pass learns about a video stream, without decoding it.

    times: presentation timestamps of the frames, ascending (stream time base), or None when
    the packets carry no timestamps (then frames are counted while decoding).
    keys: (timestamp, seek target) of each keyframe, ascending; the seek target is the
    smaller of its pts and dts, so seeking backward to it lands on that keyframe or earlier.
    """

    count: int
    times: np.ndarray | None
    keys: np.ndarray            # (n_keyframes, 2) int64
    time_base: float            # seconds per timestamp unit


def frame_index(path: str | Path) -> FrameIndex:
    """Demux the first video stream's packets (no decoding): frame times and keyframes."""
    times = array("q")   # 8 bytes a frame: two hours at 60 fps take 3.5 MB
    keys: list[tuple[int, int]] = []
    complete = True
    with av.open(str(path), metadata_errors="ignore") as container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = container.streams.video[0]
        time_base = float(stream.time_base) if stream.time_base else 0.0
        count = 0
        for packet in container.demux(stream):
            # Empty packets flush the decoder at the end; discarded ones (cut by an MP4 edit
            # list) give no frame.
            if not packet.size or packet.is_discard:
                continue
            count += 1
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                complete = False
                continue
            times.append(pts)
            if packet.is_keyframe:
                dts = packet.dts if packet.dts is not None else pts
                keys.append((pts, min(pts, dts)))
    if not count:
        raise VideoDecodeError(path, "no frames decoded")
    ordered = np.sort(np.frombuffer(times, dtype=np.int64)) if complete and time_base else None
    key_array = np.asarray(sorted(keys), dtype=np.int64).reshape(-1, 2)
    return FrameIndex(count, ordered, key_array, time_base)


def _segment(index: FrameIndex, start: float | None, end: float | None,
             path: str | Path) -> np.ndarray:
    """The frame times inside [start, end) seconds, counted from the first frame."""
    assert index.times is not None
    times = index.times
    if start is None and end is None:
        return times
    seconds = (times - times[0]) * index.time_base   # (n,)
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= seconds >= start - 1e-9
    if end is not None:
        keep &= seconds < end - 1e-9
    if not keep.any():
        raise VideoDecodeError(path, f"segment {_span(start, end)} lies outside the video "
                               f"(its frames span 0.00-{seconds[-1]:.2f} s)")
    return times[keep]


def _span(start: float | None, end: float | None) -> str:
    return f"{0.0 if start is None else start:.2f}-{'end' if end is None else f'{end:.2f}'} s"


class _Converter:
    """A decoded frame -> (height, width, 3) uint8 RGB as displayed (rotation applied)."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.reformatter = VideoReformatter()   # one swscale context for the whole video

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        turns = int(round((frame.rotation or 0) / 90)) % 4   # counter-clockwise quarter turns
        h, w = (self.width, self.height) if turns % 2 else (self.height, self.width)
        rgb = self.reformatter.reformat(frame, width=w, height=h, format="rgb24",
                                        interpolation="AREA").to_ndarray()   # (h, w, 3)
        return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class _BadSeek(Exception):
    """A seek landed after the frame it was for: the container's index cannot be trusted."""


class _NoTimestamps(Exception):
    """Decoded frames carry no timestamps: frames are counted instead."""


def _open(path: str | Path, threads: int) -> tuple[av.container.InputContainer, av.VideoStream]:
    container = av.open(str(path), metadata_errors="ignore")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"      # frame and slice threads, FFmpeg's choice
    stream.thread_count = threads    # 0: FFmpeg's choice; 1 where processes run side by side
    return container, stream


def _by_time(path: str | Path, wanted: np.ndarray, keys: np.ndarray, convert: _Converter,
             threads: int, seek: bool) -> dict[int, np.ndarray]:
    """{timestamp: converted frame} for the wanted timestamps (ascending, unique)."""

    def key_before(t: int) -> int:   # the last keyframe at or before timestamp t; -1: none
        return int(np.searchsorted(keys[:, 0], t, side="right")) - 1

    got: dict[int, np.ndarray] = {}
    last: av.VideoFrame | None = None
    container, stream = _open(path, threads)
    with container:
        i, position, jumped_to = 0, None, -1   # next wanted; last timestamp decoded; last seek
        while i < len(wanted):
            key = key_before(int(wanted[i]))
            jump = seek and key >= 0 and (keys[key, 0] > position if position is not None
                                          else key > 0)
            if jump:
                container.seek(int(keys[key, 1]), stream=stream, backward=True)
                jumped_to = key
            first = True
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise _NoTimestamps
                if jump and first and frame.pts > wanted[i]:
                    raise _BadSeek
                first, position, last = False, frame.pts, frame
                while i < len(wanted) and frame.pts >= wanted[i]:
                    got[int(wanted[i])] = convert(frame)   # the wanted frame, or the next one
                    i += 1
                if i == len(wanted):
                    break
                ahead = key_before(int(wanted[i]))
                if seek and ahead > jumped_to and keys[ahead, 0] > frame.pts:
                    break   # a keyframe lies between here and the next wanted frame: seek
            else:
                if jump and first:
                    raise _BadSeek   # it landed past the last frame
                break       # the end of the video
        if i < len(wanted):   # timestamps past the last frame that decoded: the last frame
            if last is None:
                raise VideoDecodeError(path, "no frames decoded")
            tail = convert(last)
            got.update({int(t): tail for t in wanted[i:]})
    return got


def _by_count(path: str | Path, wanted: np.ndarray, convert: _Converter,
              threads: int) -> dict[int, np.ndarray]:
    """{frame number: converted frame}, decoding from the start and counting frames."""
    got: dict[int, np.ndarray] = {}
    container, stream = _open(path, threads)
    last, n = None, 0
    with container:
        for n, frame in enumerate(container.decode(stream)):   # noqa: B007 - n is used below
            last = frame
            if n in wanted:
                got[n] = convert(frame)
            if n >= wanted[-1]:
                break
    if last is None:
        raise VideoDecodeError(path, "no frames decoded")
    tail = convert(last)
    return {int(k): got.get(int(k), tail) for k in wanted}


def _decode(path: Path, frames: int, height: int, width: int, start: float | None,
            end: float | None, threads: int) -> np.ndarray:
    index = frame_index(path)
    convert = _Converter(height, width)
    if index.times is not None:
        times = _segment(index, start, end, path)
        picks = times[nearest_times(times, frames)]                     # (frames,) timestamps
        wanted = np.unique(picks)
        try:
            try:
                got = _by_time(path, wanted, index.keys, convert, threads, seek=True)
            except _BadSeek:
                got = _by_time(path, wanted, index.keys, convert, threads, seek=False)
            return np.stack([got[int(t)] for t in picks])               # (T, H, W, 3)
        except _NoTimestamps:
            pass
    if start is not None or end is not None:
        raise VideoDecodeError(path, f"segment {_span(start, end)} cannot be cut: the video's "
                               "frames carry no timestamps")
    picks = sample_indices(index.count, frames)
    got = _by_count(path, np.unique(picks), convert, threads)
    return np.stack([got[int(k)] for k in picks])


def decode_video(path: str | Path, frames: int, height: int, width: int,
                 start: float | None = None, end: float | None = None,
                 threads: int = 0) -> np.ndarray:
    """Decode a video file into (frames, height, width, 3) uint8 RGB.

    `frames` frames sampled uniformly in time over the whole video, or over the segment
    [start, end) seconds counted from its first frame, each resized to height x width as
    displayed. `threads` is FFmpeg's decoding threads (0: its own choice). Raises
    VideoDecodeError for anything unreadable.
    """
    check_clip_size(frames, height, width)
    if start is not None and end is not None and start >= end:
        raise ValueError(f"segment start {start} is not before its end {end}")
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
    try:
        clip = _decode(path, frames, height, width, start, end, threads)
    except VideoDecodeError:
        raise
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoDecodeError(path, f"decoding failed: {_ffmpeg_reason(error)}") from None
    return np.ascontiguousarray(clip, dtype=np.uint8)
