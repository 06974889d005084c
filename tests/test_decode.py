"""decode_video on the videos users have: long ones, variable frame rates, rotated phone
videos, streams with no duration or no timestamps, segments; in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from _videos import BITS, coded_frame, encode_coded, read_codes

from vidtune.data.decode import VideoDecodeError, decode_video, frame_index, nearest_times


def nearest(times: list[int], count: int) -> list[int]:
    """The reference rule, by brute force in exact fractions: for `count` times spread evenly
    from the first frame to the last, the nearest frame (the earlier one on a tie)."""
    first, span = times[0], times[-1] - times[0]
    targets = [first + Fraction(span * i, max(count - 1, 1)) for i in range(count)]
    return [min(range(len(times)), key=lambda k: (abs(times[k] - t), k)) for t in targets]


def test_nearest_times_is_the_brute_force_rule():
    rng = np.random.default_rng(0)
    for _ in range(200):
        times = np.sort(rng.choice(1000, size=rng.integers(1, 40), replace=False))
        count = int(rng.integers(1, 50))
        assert list(nearest_times(times, count)) == nearest([int(t) for t in times], count)
    # At a constant frame rate it is the old rule, rint(linspace(0, n - 1, T)).
    for n, count in [(12, 4), (12, 30), (300, 16), (7, 7), (1, 5)]:
        even = np.arange(n) * 40
        assert list(nearest_times(even, count)) == list(np.rint(np.linspace(0, n - 1, count)))


@pytest.mark.parametrize("codec,ext,gop", [
    ("libx264", "mp4", 25),       # B-frames: packets out of presentation order
    ("libvpx-vp9", "webm", 30),
    ("mpeg4", "avi", 20),
    ("mjpeg", "mkv", None),       # every frame a keyframe
    ("mpeg2video", "mpg", 15),    # timestamps that do not start at 0
])
def test_long_gops_seek_to_the_wanted_frames(tmp_path, codec, ext, gop, codec_available):
    if not codec_available(codec, "its seek test is skipped"):
        pytest.skip(f"no {codec}")
    pix = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    video = encode_coded(tmp_path / f"v.{ext}", 400, codec=codec, gop=gop, pix_fmt=pix)
    clip = decode_video(video, 16, 24, 32)
    assert clip.shape == (16, 24, 32, 3) and clip.dtype == np.uint8
    assert read_codes(clip) == list(np.rint(np.linspace(0, 399, 16)))
    # A segment [4 s, 6 s) at 25 fps holds frames 100..149.
    segment = decode_video(video, 5, 24, 32, start=4.0, end=6.0)
    assert read_codes(segment) == list(np.rint(np.linspace(100, 149, 5)))


def test_variable_frame_rate_samples_uniformly_in_time(tmp_path):
    # 20 frames 20 ms apart, then 10 frames 200 ms apart: most of the time is in the slow part.
    pts = [20 * i for i in range(20)] + [380 + 200 * i for i in range(1, 11)]
    video = encode_coded(tmp_path / "vfr.mp4", 30, pts_ms=pts)
    index = frame_index(video)
    assert index.times is not None
    seconds = list((index.times - index.times[0]) * index.time_base)
    assert np.allclose(seconds, np.array(pts) / 1000)          # the container kept them
    want = nearest(pts, 8)
    assert read_codes(decode_video(video, 8, 24, 32)) == want
    assert want != list(np.rint(np.linspace(0, 29, 8)))       # not uniform in frame number
    assert sum(k >= 20 for k in want) >= 6                     # most in the slow second half


@pytest.mark.parametrize("degrees,corner", [(90, "bottom-left"), (-90, "top-right"),
                                            (180, "bottom-right"), (0, "top-left")])
def test_rotation_metadata_is_applied(tmp_path, degrees, corner):
    """A 64x48 landscape video with a display rotation plays as the player shows it: 48x64
    when turned by 90 degrees. Frame 1 is white in its top-left block only."""
    video = encode_coded(tmp_path / "phone.mp4", 2, size=(64, 48), rotation=degrees)
    turned = degrees % 180 != 0
    height, width = (64, 48) if turned else (48, 64)
    clip = decode_video(video, 2, height, width)
    assert clip.shape == (2, height, width, 3)
    frame = clip[1].mean(axis=2)                                # (H, W)
    h, w = frame.shape
    corners = {"top-left": frame[: h // 6, : w // 6], "top-right": frame[: h // 6, -w // 6:],
               "bottom-left": frame[-h // 6:, : w // 6], "bottom-right": frame[-h // 6:, -w // 6:]}
    assert {name for name, block in corners.items() if block.mean() > 200} == {corner}
    assert coded_frame(1, 48, 64)[:8, :10].min() == 255   # where the block was encoded


def test_a_stream_with_no_duration(tmp_path, codec_available):
    if not codec_available("libvpx-vp9", "the no-duration test is skipped"):
        pytest.skip("no libvpx-vp9")
    import av

    video = encode_coded(tmp_path / "live.webm", 50, codec="libvpx-vp9", gop=10,
                         options={"live": "1"})
    with av.open(str(video)) as container:   # what makes it hard: nothing says how long it is
        assert container.duration is None and container.streams.video[0].duration is None
        assert not container.streams.video[0].frames
    assert read_codes(decode_video(video, 6, 24, 32)) == list(np.rint(np.linspace(0, 49, 6)))


def test_frames_without_timestamps_are_counted(tmp_path):
    """A raw H.264 stream: no container, no timestamps, no duration: frames are counted."""
    video = encode_coded(tmp_path / "raw.h264", 40, fmt="h264", gop=10)
    assert frame_index(video).times is None
    assert read_codes(decode_video(video, 5, 24, 32)) == list(np.rint(np.linspace(0, 39, 5)))
    with pytest.raises(VideoDecodeError, match="cannot be cut: the video's frames carry no "
                       "timestamps"):
        decode_video(video, 5, 24, 32, start=0.5, end=1.0)


def test_segments_outside_the_video_and_bad_segments(tmp_path):
    video = encode_coded(tmp_path / "v.mp4", 50)   # 2 s
    with pytest.raises(VideoDecodeError, match=r"segment 5.00-6.00 s lies outside the video "
                       r"\(its frames span 0.00-1.96 s\)"):
        decode_video(video, 4, 24, 32, start=5.0, end=6.0)
    with pytest.raises(ValueError, match="segment start 2.0 is not before its end 1.0"):
        decode_video(video, 4, 24, 32, start=2.0, end=1.0)
    # A segment that runs past the end keeps what there is; one with only a start, likewise.
    assert read_codes(decode_video(video, 3, 24, 32, start=1.0, end=9.0)) == [25, 37, 49]
    assert read_codes(decode_video(video, 3, 24, 32, start=1.0)) == [25, 37, 49]
    assert read_codes(decode_video(video, 2, 24, 32, end=0.2)) == [0, 4]


# VmHWM: the peak RSS of this process's own memory (getrusage's ru_maxrss would start at
# pytest's, which Linux carries over fork and exec).
_MEASURE = """
import json, sys, time
from vidtune.data.decode import decode_video
from vidtune.data import build   # what a decoding process imports
def peak_kb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
before = peak_kb()
t0 = time.perf_counter()
clip = decode_video(sys.argv[1], 16, 128, 128)
print(json.dumps({"before_kb": before, "after_kb": peak_kb(),
                  "s": time.perf_counter() - t0, "torch": "torch" in sys.modules,
                  "codes": [int(x) for x in clip.reshape(16, -1)[:, 0]]}))
"""


@pytest.mark.slow
def test_a_long_video_decodes_in_bounded_memory(tmp_path):
    """Four minutes at 30 fps (7200 frames): keeping every frame at 128x128 would take 350 MB;
    the decoder keeps the 16 it samples. Measured in a fresh process, as a decoding worker is,
    which must not import torch."""
    n = 4 * 60 * 30
    video = encode_coded(tmp_path / "long.mp4", n, rate=30, size=(160, 120), gop=250)
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(video)], capture_output=True,
                         text=True, check=True)
    m = json.loads(out.stdout)
    grew_mb = (m["after_kb"] - m["before_kb"]) / 1024
    assert grew_mb < 60, f"peak memory grew by {grew_mb:.0f} MB while decoding"
    assert not m["torch"], "a decoding process imported torch (0.5 GB)"
    clip = decode_video(video, 16, 48, 64)
    wanted = np.rint(np.linspace(0, n - 1, 16)).astype(int)
    assert read_codes(clip) == list(wanted % (1 << BITS))   # the codes wrap past 4095
