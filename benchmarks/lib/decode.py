"""Benchmark: decoding real videos, one long video and a data set's worth.

1. A long video: 10 minutes of 720p at 30 fps (18,000 frames, x264, a keyframe every 250
   frames), encoded once by the benchmark itself. It is decoded to 16 frames of 112x112 by the
   decoder it replaced (every frame decoded, resized and kept, then sampled: a verbatim
   copy of main at b646fee) and by data.decode.decode_video (packet timestamps, seeks to the
   keyframes before the wanted frames, only those converted), each in a fresh process that
   imports nothing else, so its peak RSS is the decoder's. Goal: peak RSS under 300 MB, and
   faster than before. The frames show their own number, so the output is checked too.
2. Throughput: the clip cache of a data set of short videos (10 s of 320x240 at 25 fps, like
   Kinetics clips), built by 1 process, 2 processes (data.build.process_runner), and Ray tasks
   on a 2-node cluster started on this machine with `ray start` (one CPU a node; the nodes
   share the disk, as a cluster shares its storage). Videos per second, each from an empty
   cache. For reference, the threads of the old build with the old decoder.

benchmarks/bench_decode.py runs it and writes its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.lib.common import SMOKE_NOTE, machine_line, verdict, write_section

KEY = "bench_decode"
GOAL_RSS_MB = 300.0
FRAMES, SIZE = 16, 112           # what each video is decoded to: (16, 112, 112, 3)


@dataclass(frozen=True)
class Plan:
    long_s: int                  # the long video's length
    long_size: tuple[int, int]   # its width, height
    videos: int                  # the data set's videos
    video_s: int                 # each one's length
    repeats: int


# 240 videos: a build of several seconds, so that starting the processes or the tasks is a
# small part of it.
FULL = Plan(long_s=600, long_size=(1280, 720), videos=240, video_s=10, repeats=2)
SMOKE = Plan(long_s=20, long_size=(320, 240), videos=6, video_s=2, repeats=1)


# ---- the videos -------------------------------------------------------------------------

def _yuv_frame(i: int, width: int, height: int) -> np.ndarray:
    """(height * 3 / 2, width) yuv420p: frame number i as 12 blocks (white = 1) and a bar that
    moves, so the encoder has motion to code."""
    y = np.full((height, width), 16, dtype=np.uint8)
    bh, bw = height // 2, width // 6
    for b in range(12):
        if (i >> b) & 1:
            y[(b // 6) * bh:(b // 6 + 1) * bh, (b % 6) * bw:(b % 6 + 1) * bw] = 235
    x = (8 * i) % max(1, width - 24)
    y[: height // 16, x:x + 24] = 128    # in the top rows, above where the blocks are read
    return np.concatenate([y, np.full((height // 2, width), 128, dtype=np.uint8)])


def encode(path: Path, seconds: int, size: tuple[int, int], rate: int, gop: int = 250) -> Path:
    """An H.264 MP4 of coded frames (a low bitrate, so that encoding is quick)."""
    import av

    width, height = size
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {"preset": "ultrafast", "crf": "30"}
        for i in range(seconds * rate):
            frame = av.VideoFrame.from_ndarray(_yuv_frame(i, width, height), format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def cached_video(work: Path, name: str, seconds: int, size: tuple[int, int], rate: int) -> Path:
    """Encode once; later runs reuse the file (its name holds everything it depends on)."""
    path = work / f"{name}-{seconds}s-{size[0]}x{size[1]}-{rate}fps.mp4"
    if not path.exists():
        print(f"-- encoding {path.name}", file=sys.stderr, flush=True)
        work.mkdir(parents=True, exist_ok=True)
        encode(path, seconds, size, rate)
    return path


def read_number(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    bits = [frame[int((b // 6 + 0.5) * h / 2), int((b % 6 + 0.5) * w / 6)].mean() > 127
            for b in range(12)]
    return sum(1 << b for b, on in enumerate(bits) if on)


# ---- 1. the long video ------------------------------------------------------------------

# The decoder of main at b646fee (data/video_folder.py), verbatim but for the checks of a bad
# file: every frame decoded and resized while decoding, all kept, then sampled.
_BEFORE = """
import json, sys, time
import av
import numpy as np
from av.video.reformatter import VideoReformatter

def sample_indices(available, frames):
    return np.rint(np.linspace(0, available - 1, frames)).astype(np.int64)

def decode_video(path, frames, height, width):
    decoded = []
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        reformatter = VideoReformatter()
        for frame in container.decode(stream):
            rgb = reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                       interpolation="AREA")
            decoded.append(rgb.to_ndarray())
    clip = np.stack([decoded[i] for i in sample_indices(len(decoded), frames)])
    return np.ascontiguousarray(clip, dtype=np.uint8)
"""

_AFTER = """
import json, sys, time
import numpy as np
from vidtune.data.decode import decode_video as _decode

def decode_video(path, frames, height, width):
    return _decode(path, frames, height, width, threads=int(sys.argv[3]))
"""

# VmHWM, not getrusage's ru_maxrss: a child's ru_maxrss starts at its parent's peak (Linux
# keeps it across fork and exec), and the parent here is a benchmark that imported torch.
_MEASURE = """
def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

path, size = sys.argv[1], int(sys.argv[2])
base = peak_kb()
t0 = time.perf_counter()
clip = decode_video(path, 16, size, size)
seconds = time.perf_counter() - t0
np.save(sys.argv[4], clip)
print(json.dumps({"s": seconds, "peak_kb": peak_kb(), "base_kb": base,
                  "torch": "torch" in sys.modules}))
"""


@dataclass(frozen=True)
class Decoded:
    """One decode of the long video in a fresh process."""

    name: str
    seconds: float
    peak_mb: float               # the process's peak RSS (imports included)
    base_mb: float               # its peak RSS before decoding: Python, NumPy, PyAV
    correct: bool                # the 16 frames are the ones uniform sampling picks
    torch: bool                  # the process imported torch (it must not)


def _decode_once(name: str, code: str, video: Path, threads: int, frames_total: int) -> Decoded:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "clip.npy"
        done = subprocess.run([sys.executable, "-c", code + _MEASURE, str(video), str(SIZE),
                               str(threads), str(out_file)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
        m = json.loads(done.stdout.strip().splitlines()[-1])
        clip = np.load(out_file)
    # 12 blocks hold frame numbers up to 4095: longer videos' numbers wrap (the samples are
    # over 1,000 frames apart in the 10-minute video, so a wrong frame still shows).
    want = (np.rint(np.linspace(0, frames_total - 1, FRAMES)).astype(int) % 4096).tolist()
    got = [read_number(frame) for frame in clip]
    return Decoded(name, m["s"], m["peak_kb"] / 1024, m["base_kb"] / 1024, got == want, m["torch"])


def measure_long(video: Path, frames_total: int, repeats: int) -> list[Decoded]:
    """Median time (peak RSS of the last run) of each decoder, runs interleaved."""
    variants = [("before: every frame decoded and kept (main b646fee)", _BEFORE, 0),
                ("after: decode_video, FFmpeg's threads", _AFTER, 0),
                ("after: decode_video, 1 thread", _AFTER, 1)]
    runs: dict[str, list[Decoded]] = {name: [] for name, _, _ in variants}
    for r in range(repeats):
        for name, code, threads in variants:
            print(f"-- long video, repeat {r + 1}/{repeats}: {name}", file=sys.stderr, flush=True)
            runs[name].append(_decode_once(name, code, video, threads, frames_total))
    out = []
    for name, _, _ in variants:
        times = [d.seconds for d in runs[name]]
        last = runs[name][-1]
        out.append(Decoded(name, statistics.median(times), max(d.peak_mb for d in runs[name]),
                           last.base_mb, all(d.correct for d in runs[name]), last.torch))
    return out


# ---- 2. throughput ----------------------------------------------------------------------

@dataclass(frozen=True)
class Throughput:
    name: str
    workers: int
    videos: int
    seconds: float               # median wall time of a build from an empty cache
    nodes: int | None = None     # Ray: the distinct nodes where chunks ran (None: not Ray)

    @property
    def per_s(self) -> float:
        return self.videos / self.seconds


def make_dataset(work: Path, plan: Plan) -> Path:
    """work/dataset/<class>/<k>.mp4: plan.videos short videos in two classes (copies of a few
    encoded ones, under other names: decoding cost is what is measured)."""
    root = work / f"dataset-{plan.videos}x{plan.video_s}s"
    if root.exists():
        return root
    sources = [cached_video(work, f"short{k}", plan.video_s, (320, 240), 25) for k in range(4)]
    tmp = work / f".{root.name}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    for k in range(plan.videos):
        target = tmp / ("a" if k % 2 else "b") / f"{k:04d}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[k % len(sources)], target)
    tmp.rename(root)
    return root


def _build(root: Path, cache: Path, workers: int, runner=None) -> tuple[float, set[str]]:
    from vidtune.data.build import load_source
    from vidtune.data.catalogue import folder_catalogue

    shutil.rmtree(cache, ignore_errors=True)
    nodes: set[str] = set()
    spy = None
    if runner is not None:
        def spy(chunks, done):   # noqa: E306 - the real runner, noting where chunks ran
            runner(chunks, lambda r: (nodes.add(r.node or r.host), done(r)))
    t0 = time.perf_counter()
    load_source(folder_catalogue(root), FRAMES, SIZE, SIZE, cache, progress=False,
                workers=workers, runner=spy)
    seconds = time.perf_counter() - t0
    shutil.rmtree(cache, ignore_errors=True)
    return seconds, nodes


def _old_build(root: Path, workers: int) -> float:
    """The build with the decoder it replaced in a thread per core, all clips in memory."""
    from concurrent.futures import ThreadPoolExecutor

    namespace: dict = {}
    exec(_BEFORE, namespace)   # the verbatim old decoder above
    files = sorted(root.rglob("*.mp4"))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda f: namespace["decode_video"](f, FRAMES, SIZE, SIZE), files))
    return time.perf_counter() - t0


def measure_local(root: Path, work: Path, videos: int, repeats: int) -> list[Throughput]:
    cache = work / "cache"
    out = []
    for workers in (1, 2):
        times = [_build(root, cache, workers)[0] for _ in range(repeats)]
        out.append(Throughput(f"{workers} process{'es' if workers > 1 else ''}", workers, videos,
                              statistics.median(times)))
        print(f"-- {out[-1].name}: {out[-1].per_s:.1f} videos/s", file=sys.stderr, flush=True)
    times = [_old_build(root, 2) for _ in range(repeats)]
    out.append(Throughput("before: 2 threads, old decoder (main b646fee)", 2, videos,
                          statistics.median(times)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _own_processes(marker: str, groups: list[int]) -> list[int]:
    """The processes of a cluster this benchmark started: those in the process groups of its
    `ray start` commands, those whose command line names its own temporary folder (`marker`,
    unique to this run), and their descendants. Never a process matched by name alone."""
    parents: dict[int, int] = {}
    chosen: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[pid] = int(fields[1])
        if int(fields[2]) in groups or marker in cmdline:
            chosen.add(pid)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in chosen} - chosen
        chosen |= more
        grew = bool(more)
    chosen.discard(os.getpid())
    return sorted(chosen)


def _stop(marker: str, groups: list[int]) -> None:
    for sig in (15, 9):
        for pid in _own_processes(marker, groups):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(3 if sig == 15 else 0.5)


def _auth_mode() -> str:
    """RAY_AUTH_MODE for a `ray start` cluster that this process then joins as the driver: the
    driver's own (driver.ray_auth_mode). Where Ray is not imported yet, it is set first to go
    without tokens (the cluster lives only as long as the benchmark): `ray start` would turn
    them on by default, and a fresh driver would follow only if a token file exists."""
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from vidtune.trainable.tune.driver import ray_auth_mode

    return ray_auth_mode()


@contextmanager
def ray_start_cluster(nodes: int = 2) -> Iterator[str]:
    """`ray start` a head and nodes-1 workers on this machine, one CPU each, each with its own
    temporary folder; yields the address. Its token auth is the driver's (_auth_mode). Stopped
    by killing, by pid, only the processes these commands started (never `ray stop`, which
    would stop every Ray on the machine)."""
    ray = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_AUTH_MODE": _auth_mode()}
    base = Path(tempfile.mkdtemp(prefix="vt-ray-"))   # short: Ray's socket paths are limited
    port = _free_port()
    address = f"127.0.0.1:{port}"
    groups: list[int] = []
    try:
        for k in range(nodes):
            args = ["--head", f"--port={port}", "--include-dashboard=false"] if k == 0 else \
                [f"--address={address}"]
            proc = subprocess.Popen([ray, "start", *args, "--num-cpus=1", "--num-gpus=0",
                                     f"--temp-dir={base / f'n{k}'}", "--disable-usage-stats"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
            groups.append(proc.pid)          # its daemons start in its process group
            out, _ = proc.communicate(timeout=180)
            if proc.returncode != 0:
                raise RuntimeError(f"ray start failed:\n{out[-3000:]}")
        yield address
    finally:
        _stop(str(base), groups)
        shutil.rmtree(base, ignore_errors=True)


def measure_cluster(root: Path, work: Path, videos: int, repeats: int) -> Throughput:
    """Ray tasks on a 2-node `ray start` cluster, reached through the driver as a search does."""
    with ray_start_cluster(2) as address:
        from vidtune.trainable.core.search_config import SearchConfig
        from vidtune.trainable.tune.cluster_cache import ray_runner
        from vidtune.trainable.tune.driver import init_ray, shutdown

        init_ray(SearchConfig(address=address))
        try:
            runs = [_build(root, work / "cache", 2, runner=ray_runner) for _ in range(repeats)]
        finally:
            shutdown()
    nodes = set().union(*(n for _, n in runs))
    result = Throughput("Ray tasks, 2-node `ray start` cluster (1 CPU a node)", 2, videos,
                        statistics.median(s for s, _ in runs), len(nodes))
    print(f"-- {result.name}: {result.per_s:.1f} videos/s on {result.nodes} nodes",
          file=sys.stderr, flush=True)
    return result


# ---- the section ------------------------------------------------------------------------

def _nodes_ran(nodes: int | None) -> str:
    if nodes is None:
        return ""
    return f" ({nodes} node{'s' if nodes != 1 else ''} ran chunks)"


def render(plan: Plan, long: list[Decoded], rates: list[Throughput], smoke: bool,
           long_mb: float) -> str:
    before, after = long[0], long[1]
    w, h = plan.long_size
    lines = [
        "## Decoding real videos (`benchmarks/bench_decode.py`)",
        "",
        *([SMOKE_NOTE, ""] if smoke else []),
        f"- Run: {machine_line()}.",
        f"- Long video: {plan.long_s // 60} min {plan.long_s % 60} s of {w}x{h} at 30 fps "
        f"({plan.long_s * 30} frames, H.264 ultrafast CRF 30, a keyframe every 250 frames, "
        f"{long_mb:.0f} MB), decoded to {FRAMES} frames of {SIZE}x{SIZE}, each decoder in a "
        f"fresh process; median of {plan.repeats} run(s).",
        "",
        "| decoder | time | peak RSS | of which before decoding | frames right |",
        "|---|---|---|---|---|",
        *[f"| {d.name} | {d.seconds:.2f} s | {d.peak_mb:.0f} MB | {d.base_mb:.0f} MB | "
          f"{'yes' if d.correct else 'NO'} |" for d in long],
        "",
        f"Goal: peak RSS under {GOAL_RSS_MB:.0f} MB: {verdict(after.peak_mb < GOAL_RSS_MB)}; "
        f"faster than before: {verdict(after.seconds < before.seconds)} "
        f"({before.seconds / after.seconds:.1f}x). The decoding process imports no torch: "
        f"{verdict(not after.torch)}.",
        "",
        f"- Throughput: the clip cache of {plan.videos} videos of {plan.video_s} s, 320x240 at "
        f"25 fps (H.264, one keyframe every 250 frames), {FRAMES} frames of {SIZE}x{SIZE} a "
        f"video, from an empty cache; median of {plan.repeats} build(s).",
        "",
        "| built by | videos/s | build time |",
        "|---|---|---|",
        *[f"| {t.name}{_nodes_ran(t.nodes)} | "
          f"{t.per_s:.1f} | {t.seconds:.1f} s |" for t in rates],
        "",
        "Two processes on two cores against one: the speed-up is what the second core adds "
        "while the machine does other work too (see the load average above). The cluster's "
        "nodes share this machine's two cores, so it shows what Ray adds, not what a second "
        "machine would.",
    ]
    return "\n".join(lines)


def run_decode_bench(out: str | Path, work: str | Path | None = None, smoke: bool = False,
                     cluster: bool = True, repeats: int | None = None) -> str:
    plan = SMOKE if smoke else FULL
    if repeats:
        plan = Plan(plan.long_s, plan.long_size, plan.videos, plan.video_s, repeats)
    work = Path(work) if work else Path(tempfile.gettempdir()) / "vidtune-bench-decode"
    long_video = cached_video(work, "long", plan.long_s, plan.long_size, 30)
    long = measure_long(long_video, plan.long_s * 30, plan.repeats)
    root = make_dataset(work, plan)
    rates = measure_local(root, work / f"run-{uuid.uuid4().hex[:6]}", plan.videos, plan.repeats)
    if cluster:
        rates.insert(2, measure_cluster(root, work / f"run-{uuid.uuid4().hex[:6]}", plan.videos,
                                        plan.repeats))
    body = render(plan, long, rates, smoke, long_video.stat().st_size / 2**20)
    write_section(out, KEY, body)
    print(body)
    return body
