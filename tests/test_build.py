"""Building the clip cache at dataset scale: one process per core, the same store as one
process; one builder per store while the others wait; builders and decoders killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _videos import encode_coded, read_code

from vidtune.data.build import build, load_source, plan, process_runner
from vidtune.data.catalogue import folder_catalogue
from vidtune.data.lock import BuildLock
from vidtune.data.store import open_store


def make_folder(root: Path, per_class: int, frames: int = 12) -> Path:
    for c, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            encode_coded(root / name / f"{i:03d}.avi", frames + c * per_class + i,
                         codec="mpeg4", size=(36, 24))
    return root


def slow_folder(root: Path, per_class: int = 30) -> Path:
    """Videos that take a while to decode: 500 frames of 320x240 behind a single keyframe, so
    every sample needs the frames before it (one encoded per class, copied)."""
    for c, name in enumerate(("cat", "dog")):
        first = encode_coded(root / name / "000.mp4", 500, size=(320, 240), gop=1000, first=c)
        for i in range(1, per_class):
            shutil.copyfile(first, root / name / f"{i:03d}.mp4")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("build") / "videos", per_class=12)


def last_codes(arrays) -> list[int]:
    return [read_code(np.asarray(clip[-1])) for clip in arrays.clips]


def test_processes_build_the_same_store_as_one(folder, tmp_path):
    catalogue = folder_catalogue(folder)
    seen = []
    pool = process_runner(2)

    def spy(chunks, done):   # the real runner; it only records where each chunk ran
        pool(chunks, lambda result: (seen.append(result), done(result)))

    two, report = load_source(catalogue, 4, 24, 36, tmp_path / "a", progress=False, workers=2,
                              runner=spy)
    one, _ = load_source(catalogue, 4, 24, 36, tmp_path / "b", progress=False, workers=1)
    assert report.decoded == 24 and len(seen) >= 2
    assert len({r.pid for r in seen}) == 2 and os.getpid() not in {r.pid for r in seen}
    np.testing.assert_array_equal(two.clips, one.clips)
    np.testing.assert_array_equal(two.labels, one.labels)
    assert last_codes(two) == [11 + k for k in range(24)]   # video k has 12 + k frames, in order


_LOAD = """
import sys
from vidtune.data.build import load_source
from vidtune.data.catalogue import folder_catalogue
arrays, report = load_source(folder_catalogue(sys.argv[1]), 4, 24, 36, sys.argv[2],
                             workers=int(sys.argv[3]))
print("clips", len(arrays), flush=True)
"""


def start_loader(folder: Path, cache: Path, workers: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _LOAD, str(folder), str(cache), str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_line(stream, text: str, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never came; got {lines}")


def test_a_cache_being_built_is_waited_for_not_built_twice(folder, tmp_path):
    cache = tmp_path / "cache"
    source = plan(folder_catalogue(folder), 4, 24, 36, cache)
    with BuildLock(source.path, progress=False):                  # this test is the builder
        waiter = start_loader(folder, cache)
        lines = wait_for_line(waiter.stderr, "waiting for the clip cache")
        assert f"waiting for the clip cache {source.path}, which process {os.getpid()} on " in lines[-1]
        time.sleep(1.0)
        assert waiter.poll() is None                                 # still waiting
        arrays, _ = build(source, process_runner(1), 1, progress=False)
        built = (source.path / "manifest.json").stat().st_mtime_ns
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert out.strip() == "clips 24"
    assert "decoding videos" not in err                             # it decoded nothing
    assert (source.path / "manifest.json").stat().st_mtime_ns == built
    assert sorted(p.name for p in source.path.parent.iterdir()) == [source.path.name]


@pytest.mark.slow
def test_a_builder_killed_midway_leaves_nothing_that_blocks_the_next(tmp_path):
    folder = slow_folder(tmp_path / "videos")
    cache = tmp_path / "cache"
    builder = start_loader(folder, cache)
    wait_for_line(builder.stderr, "decoding videos:")              # 10 % done
    os.killpg(builder.pid, signal.SIGKILL)
    builder.wait()
    kind = cache / "folders"
    leftovers = sorted(p.name for p in kind.iterdir())
    assert any(name.endswith(".lock") for name in leftovers)       # its lock file, unlocked
    assert any(p.is_dir() for p in kind.iterdir())                 # its half-built store
    arrays, report = load_source(folder_catalogue(folder), 4, 24, 36, cache, progress=False,
                                 workers=1)
    assert report.decoded == 60
    (store,) = kind.iterdir()                                       # no lock, no half store
    assert open_store(store) is not None and len(arrays) == 60


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.mark.slow
def test_a_decoding_process_killed_fails_the_build_cleanly(tmp_path):
    folder = slow_folder(tmp_path / "videos")
    cache = tmp_path / "cache"
    builder = start_loader(folder, cache, workers=2)
    wait_for_line(builder.stderr, "decoding videos:")
    workers = [w for helper in _children(builder.pid) for w in _children(helper)]
    assert workers, "no decoding processes under the helper process (data/pool.py)"
    os.kill(workers[0], signal.SIGKILL)
    out, err = builder.communicate(timeout=120)
    assert builder.returncode != 0
    assert "a decoding process died (killed, or out of memory) while decoding one of" in err
    assert "with --decode-workers 1 to find the file that kills it" in err
    kind = cache / "folders"
    assert not kind.exists() or list(kind.iterdir()) == []          # nothing left behind


def test_a_trial_never_decodes_a_missing_cache(folder, tmp_path):
    """Trials load with decode=False: the search built the cache before them, so a missing one
    means a --cache-dir the trial's node does not share, and decoding there would repeat it."""
    from vidtune.data import DataConfig, make_loaders
    from vidtune.data.build import CacheMissingError

    data = DataConfig(source=str(folder), frames=4, height=24, width=36,
                      cache_dir=str(tmp_path / "cache"))
    with pytest.raises(CacheMissingError, match=r"no clip cache of .*videos at .* on .*; the search "
                       "decodes the videos before the trials start, so every node must see that "
                       "cache: point --cache-dir at a folder all nodes share"):
        make_loaders(data, batch_size=4, progress=False, decode=False)
    assert not (tmp_path / "cache" / "folders").exists()
    make_loaders(data, batch_size=4, progress=False)                 # the driver builds it
    assert len(make_loaders(data, 4, progress=False, decode=False).train.indices) > 0


def test_a_decoding_process_imports_no_torch():
    """The helper that forks the decoding processes imports data.pool and data.build; with
    torch each process would weigh 0.5 GB more."""
    code = ("import sys, vidtune.data.pool; "
            "print(sorted({'torch', 'ray'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_decoding_process_error_comes_back_as_itself(tmp_path):
    """An error in a decoding process reaches the builder as its own kind, not a bare one."""
    from vidtune.data.chunks import CacheNotSharedError, Chunk

    chunks = [Chunk(k, ((k, str(tmp_path / "a.avi"), None, None),), 4, 24, 36,
                    str(tmp_path / "gone" / f"part-{k}.u8"), str(tmp_path)) for k in range(2)]
    with pytest.raises(CacheNotSharedError, match="cannot see the cache folder"):
        process_runner(2)(chunks, lambda result: None)


def test_a_helper_whose_parent_is_gone_exits_at_once():
    """The helper (and each worker) checks that its parent still lives after asking to die
    with it: a parent that died first sends no signal, and the orphan would wait forever."""
    not_parent = 1 if os.getpid() != 1 else 2
    done = subprocess.run([sys.executable, "-m", "vidtune.data.pool", "2", str(not_parent)],
                          input=b"", capture_output=True, timeout=60)
    assert done.returncode == 1 and done.stdout == b""
