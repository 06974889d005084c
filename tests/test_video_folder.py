"""Real video folders: small videos encoded with PyAV in several codecs, decoded back."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from _helpers import load_folder

from vidtune.data.video_folder import (
    VIDEO_EXTENSIONS,
    DecodeReport,
    VideoDecodeError,
    decode_video,
    scan_folder,
)

W, H = 32, 24
COLORS = {"blue": (30, 30, 220), "green": (30, 200, 30), "red": (220, 30, 30)}
CHANNEL = {"red": 0, "green": 1, "blue": 2}

# (relative path, codec, pix_fmt, frame count)
VIDEOS = [
    ("blue/b0.avi", "mjpeg", "yuvj420p", 14),
    ("blue/b1.webm", "libvpx-vp9", "yuv420p", 12),
    ("blue/b2.avi", "mpeg4", "yuv420p", 16),
    ("green/g0.mkv", "mjpeg", "yuvj420p", 18),
    ("green/g1.mp4", "libx264", "yuv420p", 20),
    ("green/g2.gif", "gif", "rgb8", 12),
    ("red/r0.mp4", "libx264", "yuv420p", 12),
    ("red/r1.avi", "mpeg4", "yuv420p", 15),
    ("red/r2.webm", "libvpx-vp9", "yuv420p", 16),
]


def _frames(color: tuple[int, int, int], n: int) -> list[np.ndarray]:
    """A 12x12 square of the class color moving right over a dark gray background.

    One pixel a frame, so the square's position never repeats within the 20 frames of the
    longest video: no two frames are alike, whatever the codec's noise.
    """
    out = []
    for i in range(n):
        frame = np.full((H, W, 3), 40, dtype=np.uint8)  # (H, W, 3)
        x = i % (W - 12)
        frame[6:18, x : x + 12] = color
        out.append(frame)
    return out


def _encode(path: Path, codec: str, pix_fmt: str, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, codec_available) -> Path:
    """root/{blue,green,red}/ with 3 videos each, one per entry of VIDEOS.

    On CI every codec must be there (codec_available fails otherwise). Locally a missing one
    is named in a warning: its video is left out, except the .mp4 files, which other tests
    need and which then hold MPEG-4 part 2 (built into every FFmpeg).
    """
    root = tmp_path_factory.mktemp("videos") / "my videos"
    for rel, codec, pix_fmt, n in VIDEOS:
        if codec == "libx264" and not codec_available(codec, f"{rel} is encoded with mpeg4"):
            codec = "mpeg4"
        elif not codec_available(codec, f"{rel} is left out"):
            continue
        _encode(root / rel, codec, pix_fmt, _frames(COLORS[rel.split("/")[0]], n))
    return root


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "videos"))


def _good_count(folder: Path) -> int:
    return len(scan_folder(folder)[0])


@pytest.mark.parametrize(
    "rel,codec", [(rel, codec) for rel, codec, _, _ in VIDEOS], ids=lambda v: str(v)
)
def test_each_codec_decodes_to_class_color(folder: Path, rel: str, codec: str,
                                           codec_available) -> None:
    if not codec_available(codec, "its decode test is skipped"):
        pytest.skip(f"this FFmpeg build cannot encode {codec}")
    clip = decode_video(folder / rel, frames=8, height=16, width=20)
    assert clip.shape == (8, 16, 20, 3) and clip.dtype == np.uint8
    channel_means = clip.reshape(-1, 3).mean(axis=0)  # (3,)
    assert int(np.argmax(channel_means)) == CHANNEL[rel.split("/")[0]], channel_means
    pixels = clip.reshape(-1, 3)  # (T*H*W, 3)
    assert np.all(np.abs(np.median(pixels, axis=0) - 40) < 15)  # mostly gray background...
    assert pixels[:, CHANNEL[rel.split("/")[0]]].max() > 150  # ...plus the class-colored square
    assert not np.array_equal(clip[0], clip[3])  # the square moves


def test_a_missing_codec_fails_on_ci_and_warns_locally(codec_available, monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert codec_available("mpeg4", "unused")
    with pytest.raises(pytest.fail.Exception, match="CI: .* cannot encode no-such-codec: skipped"):
        codec_available("no-such-codec", "skipped")
    monkeypatch.delenv("CI")
    with pytest.warns(UserWarning, match="cannot encode no-such-codec: skipped"):
        assert not codec_available("no-such-codec", "skipped")


def test_uniform_sampling_matches_linspace_and_repeats_when_short(folder: Path) -> None:
    path = folder / "red/r0.mp4"  # 12 frames
    full = decode_video(path, frames=12, height=H, width=W)  # every frame, in order
    assert len({frame.tobytes() for frame in full}) == 12
    longer = decode_video(path, frames=30, height=H, width=W)
    assert longer.shape == (30, H, W, 3)
    np.testing.assert_array_equal(longer, full[np.rint(np.linspace(0, 11, 30)).astype(int)])
    shorter = decode_video(path, frames=4, height=H, width=W)
    np.testing.assert_array_equal(shorter, full[[0, 4, 7, 11]])
    single = decode_video(path, frames=1, height=H, width=W)
    np.testing.assert_array_equal(single, full[:1])


def test_decode_errors_have_short_reasons(folder: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((folder / "red/r0.mp4").read_bytes()[:200])
    text = tmp_path / "text.avi"
    text.write_text("this is not a video\n" * 20)
    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        silence = np.zeros((1, 800), np.int16)  # (channels, samples)
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    expected = {
        empty: "empty file (0 bytes)",
        truncated: "decoding failed: ",
        text: "decoding failed: ",
        audio: "no video stream",
        tmp_path / "missing.mp4": "cannot read file",
    }
    for path, reason in expected.items():
        with pytest.raises(VideoDecodeError) as info:
            decode_video(path, frames=4, height=H, width=W)
        assert info.value.path == str(path)
        assert info.value.reason.startswith(reason), info.value.reason
        assert "\n" not in info.value.reason and "Errno" not in info.value.reason
    with pytest.raises(ValueError, match="frames is 0"):
        decode_video(folder / "red/r0.mp4", frames=0, height=H, width=W)


def test_a_video_folder_loads_then_hits_the_cache(folder: Path, tmp_path: Path, capfd) -> None:
    root = _copy(folder, tmp_path)
    n = _good_count(root)
    arrays, report = load_folder(root, 6, 16, 16, tmp_path / "cache")
    err = capfd.readouterr().err
    assert f"decoding videos: {n}/{n} (100%)" in err
    assert arrays.class_names == ("blue", "green", "red")
    assert arrays.clips.shape == (n, 6, 16, 16, 3) and arrays.clips.dtype == np.uint8
    files, _ = scan_folder(root)
    np.testing.assert_array_equal(arrays.labels, [label for _, label in files])
    assert report == DecodeReport(decoded=n, skipped=(), num_classes=3)
    assert report.summary() == f"decoded {n} videos in 3 classes"
    # Each clip's dominant channel is its class's color.
    dominant = arrays.clips.reshape(n, -1, 3).mean(axis=1).argmax(axis=1)  # (n,)
    np.testing.assert_array_equal(
        dominant, [CHANNEL[arrays.class_names[label]] for label in arrays.labels]
    )
    (store,) = (tmp_path / "cache" / "folders").iterdir()
    assert store.name.startswith("videos-")
    mtime = (store / "manifest.json").stat().st_mtime_ns

    again, report2 = load_folder(root, 6, 16, 16, tmp_path / "cache")
    assert isinstance(again.clips, np.memmap)
    assert capfd.readouterr().err == ""  # no decoding on a hit
    assert (store / "manifest.json").stat().st_mtime_ns == mtime
    assert report2 == report
    np.testing.assert_array_equal(again.clips, arrays.clips)


def test_cache_rebuilt_when_files_or_shape_change(folder: Path, tmp_path: Path) -> None:
    root = _copy(folder, tmp_path)
    cache = tmp_path / "cache"
    n = _good_count(root)
    first, _ = load_folder(root, 4, 16, 16, cache, progress=False)
    assert len(first) == n

    shutil.copy(root / "red/r0.mp4", root / "red/r9.mp4")  # a file is added
    added, _ = load_folder(root, 4, 16, 16, cache, progress=False)
    assert len(added) == n + 1
    assert len(list((cache / "folders").iterdir())) == 2

    for frames, height, width in [(5, 16, 16), (4, 12, 16), (4, 16, 8)]:
        resized, _ = load_folder(root, frames, height, width, cache, progress=False)
        assert resized.clip_shape == (frames, height, width)
    assert len(list((cache / "folders").iterdir())) == 5

    (root / "red/r9.mp4").write_bytes((root / "green/g1.mp4").read_bytes())  # changed content
    changed, _ = load_folder(root, 4, 16, 16, cache, progress=False)
    assert int(changed.labels[-1]) == 2  # still filed under red...
    dominant = int(np.asarray(changed.clips[-1]).reshape(-1, 3).mean(axis=0).argmax())
    assert dominant == CHANNEL["green"]  # ...but re-decoded from the new bytes


def test_unreadable_files_are_skipped_and_reported(folder: Path, tmp_path: Path, capfd) -> None:
    root = _copy(folder, tmp_path)
    n = _good_count(root)
    (root / "red/empty.mp4").write_bytes(b"")
    (root / "green/truncated.mp4").write_bytes((root / "red/r0.mp4").read_bytes()[:200])
    (root / "blue/notes.avi").write_text("not a video at all\n")
    (root / "blue/readme.txt").write_text("ignored: not a video extension")

    arrays, report = load_folder(root, 4, 16, 16, tmp_path / "cache")
    assert len(arrays) == n == report.decoded
    assert [rel for rel, _ in report.skipped] == [
        "blue/notes.avi",
        "green/truncated.mp4",
        "red/empty.mp4",
    ]
    assert report.skipped[0][1].startswith("decoding failed: ")
    assert report.skipped[1][1].startswith("decoding failed: ")
    assert report.skipped[2][1] == "empty file (0 bytes)"
    summary = report.summary()
    assert summary.startswith(f"decoded {n} videos in 3 classes; skipped 3 unreadable files:")
    for rel, reason in report.skipped:
        assert f"  {rel}: {reason}" in summary
    err = capfd.readouterr().err
    assert summary in err and "Traceback" not in err and "readme.txt" not in err

    _, cached_report = load_folder(root, 4, 16, 16, tmp_path / "cache")
    assert cached_report == report


def test_too_few_readable_clips_names_the_bad_files(folder: Path, tmp_path: Path, capfd) -> None:
    root = tmp_path / "few"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    shutil.copy(folder / "red/r0.mp4", root / "cat/ok.mp4")
    (root / "dog/zero.mp4").write_bytes(b"")
    (root / "dog/junk.avi").write_text("junk")
    with pytest.raises(ValueError) as info:
        load_folder(root, 4, 16, 16, tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "dog (0)" in message and "dog/zero.mp4: empty file (0 bytes)" in message
    assert "dog/junk.avi: decoding failed" in message
    assert not (tmp_path / "cache" / "folders").exists()  # nothing cached for a failed load

    # Classes all fine but min_clips_per_class asks for more than there are.
    n_blue = len(list((folder / "blue").iterdir()))
    with pytest.raises(ValueError, match=rf"fewer than 4 readable clips: blue \({n_blue}\)"):
        load_folder(
            folder, 4, 16, 16, tmp_path / "cache", min_clips_per_class=4, progress=False
        )

    # One class, one good clip: fewer than 2 overall.
    (root / "dog/zero.mp4").unlink()
    (root / "dog/junk.avi").unlink()
    (root / "dog").rmdir()
    with pytest.raises(ValueError, match="only 1 readable clip"):
        load_folder(root, 4, 16, 16, tmp_path / "cache", progress=False)
    capfd.readouterr()


def test_scan_folder_layout_and_bad_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for rel in ["b/2.MP4", "b/1.webm", "a/x.avi", "a/notes.txt", "a/.hidden.mp4", ".git/y.mp4"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    files, classes = scan_folder(root)
    assert classes == ("a", "b")
    assert [(p.relative_to(root).as_posix(), label) for p, label in files] == [
        ("a/x.avi", 0),
        ("b/1.webm", 1),
        ("b/2.MP4", 1),
    ]
    assert {".mp4", ".avi", ".webm", ".mkv", ".gif", ".mov"} <= VIDEO_EXTENSIONS

    with pytest.raises(ValueError, match=r"does not exist.*root/<class_name>/<video files>"):
        scan_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="is not a directory"):
        scan_folder(root / "a/x.avi")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat/v.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"flat has no class subfolders.*<class_name>"):
        scan_folder(tmp_path / "flat")
    (root / "c").mkdir()
    (root / "c/readme.txt").write_text("no videos here")
    with pytest.raises(ValueError, match=r"class folder .*c contains no video files"):
        scan_folder(root)
    with pytest.raises(ValueError, match="does not exist"):
        load_folder(tmp_path / "nope", 4, 16, 16, tmp_path / "cache")
