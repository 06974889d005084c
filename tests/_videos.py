"""Videos whose frames say their own number, encoded with PyAV, for the decode and data tests.

Frame i shows i in binary as 12 black/white blocks (2 rows of 6), coarse enough to survive any
codec at any size, so a decoded frame can be read back as the frame it came from.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

BITS = 12


def coded_frame(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(height, width, 3) uint8: frame number i as blocks; white = 1."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    bh, bw = height // 2, width // 6
    for b in range(BITS):
        if (i >> b) & 1:
            frame[(b // 6) * bh:(b // 6 + 1) * bh, (b % 6) * bw:(b % 6 + 1) * bw] = 255
    return frame


def read_code(frame: np.ndarray) -> int:
    """The frame number a (decoded, possibly resized) coded frame shows."""
    h, w = frame.shape[:2]
    bh, bw = h / 2, w / 6
    bits = [frame[int((b // 6 + 0.5) * bh), int((b % 6 + 0.5) * bw)].mean() > 127 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def read_codes(clip: np.ndarray) -> list[int]:
    return [read_code(frame) for frame in clip]


def encode_coded(path: Path, count: int, codec: str = "libx264", rate: int = 25,
                 size: tuple[int, int] = (64, 48), gop: int | None = None,
                 pts_ms: Sequence[int] | None = None, rotation: int | None = None,
                 options: dict[str, str] | None = None, fmt: str | None = None,
                 pix_fmt: str = "yuv420p", first: int = 0) -> Path:
    """`count` coded frames (numbered from `first`) at `rate` fps, or at the given presentation
    times in ms (a variable frame rate); a keyframe every `gop` frames; a display rotation
    (counter-clockwise degrees) if given; `options` for the muxer (e.g. {"live": "1"}: a WebM
    with no duration)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop:
            stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.codec_context.options = {"preset": "ultrafast"}
        if pts_ms is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(coded_frame(first + i, height, width), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

