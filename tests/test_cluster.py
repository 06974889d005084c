"""A real two-node Ray cluster from the `ray start` command line, with token authentication.

Head and worker are `ray start` processes, each with its own temp dir and ports, the token in
RAY_AUTH_MODE=token / RAY_AUTH_TOKEN as a user exports them on every machine. `vidtune search
--address auto --storage <shared path>` runs on it: trials land on both nodes; the worker is
then stopped as `ray stop` stops a machine's node (SIGTERM to its processes, SIGKILL after a
grace period), and the trial it ran goes on on the head from its checkpoint. `ray stop` itself
cannot be used here: it stops every Ray process of this machine, the head's and other test
runs' too.

Joining the cluster without the token, with a wrong one, or at an address where nothing
listens is a one-line error naming the address and the fix.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from _helpers import progress

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")]

RAY = str(Path(sys.executable).with_name("ray"))
EPOCHS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process, from /proc."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])   # the field after the state
        out[int(entry.name)] = (ppid, cmd)
    return out


@dataclass
class Node:
    temp_dir: Path

    def pids(self) -> set[int]:
        """This node's processes: those whose command line names its temp dir, and their
        descendants (the trial workers, whose command lines are `ray::...`)."""
        procs = processes()
        found = {pid for pid, (_, cmd) in procs.items() if str(self.temp_dir) in cmd}
        grown = True
        while grown:
            more = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
            found |= more
            grown = bool(more)
        return found

    def stop(self, grace_s: float = 10.0) -> None:
        """What `ray stop` does on this node's machine: SIGTERM, then SIGKILL after a grace."""
        pids = self.pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + grace_s
            while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
                time.sleep(0.1)


def node_args(temp_dir: Path) -> list[str]:
    """One node's own temp dir and ports: two nodes on one machine (and other test runs' Ray)
    must not share Ray's default ports."""
    return ["--num-cpus", "1", "--num-gpus", "0", "--temp-dir", str(temp_dir),
            "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
            "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]


@dataclass
class Cluster:
    address: str
    head: Node
    worker: Node
    env: dict[str, str]             # what every shell of the cluster exports


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    token = uuid.uuid4().hex
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    # Short paths: Ray's unix sockets live under the temp dir (at most 107 characters).
    head, worker = (Node(Path(tempfile.mkdtemp(prefix=p, dir="/tmp"))) for p in ("vt-h", "vt-w"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    try:
        started = subprocess.run([RAY, "start", "--head", "--port", str(port), "--include-dashboard",
                                  "false", *node_args(head.temp_dir)], env=env, capture_output=True,
                                 text=True, timeout=180)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        joined = subprocess.run([RAY, "start", "--address", address, *node_args(worker.temp_dir)],
                                env=env, capture_output=True, text=True, timeout=180)
        assert joined.returncode == 0, joined.stdout[-3000:] + joined.stderr[-3000:]
        yield Cluster(address, head, worker, env)
    finally:
        worker.stop(grace_s=5)
        head.stop(grace_s=5)
        for node in (head, worker):
            shutil.rmtree(node.temp_dir, ignore_errors=True)


def vidtune(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def search_args(tmp_path: Path, cache_dir: str, *extra: str) -> list[str]:
    return ["search", "--space", "tiny", "--num-samples", "4", "--max-epochs", str(EPOCHS),
            "--scheduler", "none", "--storage", str(tmp_path / "shared"), "--name", "c",
            "--num-clips", "600", "--frames", "8", "--height", "24", "--width", "24",
            "--noise", "0.2", "--cache-dir", cache_dir, *extra]


def test_joining_fails_in_one_line_naming_the_address_and_the_fix(cluster, tmp_path, cache_dir):
    without = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH")}
    nobody = f"127.0.0.1:{free_port()}"
    cases = [
        # No token, as a shell that did not export it: an explicit address never turns auth on.
        (cluster.address, {**without, "HOME": str(tmp_path)}, "RAY_AUTH_MODE=token"),
        (cluster.address, {**cluster.env, "RAY_AUTH_TOKEN": "not-the-token"}, "RAY_AUTH_TOKEN"),
        (nobody, cluster.env, "ray start --head"),
    ]
    for address, env, fix in cases:
        # Ray retries a failed GCS connection for ~20 s (one try a second); 3 tries say as much.
        env = {**env, "RAY_gcs_server_port_wait_time_s": "3"}
        done = vidtune(*search_args(tmp_path, cache_dir, "--address", address), env=env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        errors = [line for line in lines if line.startswith("vidtune search: error:")]
        assert len(errors) == 1 and address in errors[0] and fix in errors[0], done.stderr[-3000:]
        assert not (tmp_path / "shared" / "c").exists(), "nothing is written before Ray joins"


def test_search_on_a_ray_start_cluster_survives_a_stopped_worker(cluster, tmp_path, cache_dir):
    experiment = tmp_path / "shared" / "c"
    env = {**cluster.env, "RAY_ADDRESS": cluster.address, "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "search.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vidtune.scripts.cli",
                             *search_args(tmp_path, cache_dir, "--address", "auto")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def on_worker(df: pd.DataFrame) -> bool:
        return int(df["pid"].iloc[-1]) in cluster.worker.pids()

    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "search.log").read_text()[-3000:]
            assert time.time() < deadline, f"no moment to stop the worker: {progress(experiment)}"
            runs = progress(experiment)
            done = {name for name, df in runs.items() if df["epoch"].max() >= EPOCHS}
            # A finished trial, and a trial on the worker with a checkpoint, mid-way.
            victims = [name for name, df in runs.items() if name not in done and on_worker(df)
                       and 2 <= df["epoch"].max() < EPOCHS - 1]
            if done and victims:
                break
            time.sleep(0.1)
        worker_node = runs[victims[0]]["node_id"].iloc[-1]
        cluster.worker.stop()
        assert proc.wait(timeout=300) == 0, (tmp_path / "search.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()

    after = progress(experiment)
    assert len(after) == 4 and all(df["epoch"].max() == EPOCHS for df in after.values()), after
    nodes = {n for df in after.values() for n in df["node_id"]}
    assert len(nodes) == 2 and worker_node in nodes, f"trials ran on {nodes}"
    for name in done:   # finished before the stop: kept as they were, not run again
        assert after[name].iloc[: len(runs[name])].equals(runs[name])
        assert after[name]["started_at"].nunique() == 1
    # The stopped trial went on on the head, from its checkpoint, not from epoch 0.
    victim = after[victims[0]]
    moved = victim[victim["node_id"] != worker_node]
    assert len(moved), victim[["epoch", "node_id"]]
    assert moved["epoch"].iloc[0] >= 3, f"restarted from scratch:\n{victim[['epoch', 'node_id']]}"
    assert victim["epoch"].drop_duplicates().is_monotonic_increasing
