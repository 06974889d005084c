"""The lease's rules in milliseconds: when a holder is live or stale, taking and taking over
a real lease file (a local path and a file:// URI), the heartbeat and its fencing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from vidtune.trainable.core.lease import (
    LEASE_FILE,
    Holder,
    Lease,
    LeaseHeld,
    Machine,
    Verdict,
    pid_alive,
    process_start,
    running,
    running_note,
    stale,
)


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch):
    """A URI lease is read back after SETTLE_S; a local file:// store needs no second."""
    monkeypatch.setattr("vidtune.trainable.core.lease.SETTLE_S", 0.01)


ME = Machine("node-a", boot_id="boot-1", pid_ns="pid:[1]")
NOW = 1_000_000.0


def holder(host: str = "node-a", pid: int = 4242, beat: float = NOW, boot_id: str = "boot-1",
           pid_ns: str = "pid:[1]") -> Holder:
    return Holder(host, pid, NOW - 300, beat, "t0", "vidtune search", boot_id, pid_ns, "77")


def alive(*pids: int):
    return lambda pid, started: pid in pids


def test_same_machine_a_live_pid_holds_and_a_dead_one_is_taken_over_at_once():
    assert stale(holder(), ME, NOW, alive=alive(4242)) is Verdict.LIVE
    assert stale(holder(), ME, NOW, alive=alive()) is Verdict.DEAD_PID
    # The pid rule, not the heartbeat, decides on the same machine: a just-killed driver
    # (fresh beat) is taken over, and a live one with an old beat (a slow disk) is not.
    assert stale(holder(beat=NOW - 3600), ME, NOW, alive=alive(4242)) is Verdict.LIVE


def test_another_machine_only_the_heartbeat_age_decides():
    other = holder(host="node-b", boot_id="boot-9")
    assert stale(other, ME, NOW, timeout_s=60, alive=alive()) is Verdict.LIVE
    old = holder(host="node-b", beat=NOW - 61)
    assert stale(old, ME, NOW, timeout_s=60, alive=alive(4242)) is Verdict.STALE
    assert stale(holder(host="node-b", beat=NOW - 59), ME, NOW, timeout_s=60) is Verdict.LIVE


def test_same_host_name_other_boot_is_a_reboot_and_other_pid_namespace_is_another_machine():
    assert stale(holder(boot_id="boot-0"), ME, NOW, alive=alive(4242)) is Verdict.REBOOTED
    # A container sharing the host name: its pids mean nothing here, the heartbeat decides.
    container = holder(pid_ns="pid:[2]")
    assert stale(container, ME, NOW, timeout_s=60, alive=alive()) is Verdict.LIVE
    assert stale(holder(pid_ns="pid:[2]", beat=NOW - 120), ME, NOW, 60, alive()) is Verdict.STALE


def test_pid_alive_sees_a_reused_pid_and_a_zombie():
    me = os.getpid()
    assert pid_alive(me, process_start(me))
    assert not pid_alive(me, "1")                # same pid, another start time: reused
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while not os.path.exists(f"/proc/{child.pid}/stat") or \
            open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    assert not pid_alive(child.pid)              # killed, not yet reaped
    child.wait()
    assert not pid_alive(child.pid)


def test_holder_text_round_trips_and_rejects_garbage():
    h = holder()
    assert Holder.from_text(h.to_text()) == h
    with pytest.raises(ValueError, match="not a lease"):
        Holder.from_text('{"host": "a", "pi')


@pytest.fixture(params=["path", "uri"])
def folder(request, tmp_path) -> str:
    return str(tmp_path / "exp") if request.param == "path" else f"file://{tmp_path}/exp"


def lease_file(folder: str) -> str:
    return folder.removeprefix("file://") + "/" + LEASE_FILE


def test_second_lease_is_refused_naming_holder_and_fix_then_free_after_release(folder):
    first = Lease(folder, "vidtune search").acquire()
    try:
        with pytest.raises(LeaseHeld) as refused:
            Lease(folder, "vidtune resume").acquire()
        line = str(refused.value)
        assert "\n" not in line
        assert f"pid {os.getpid()} on host {os.uname().nodename}" in line
        assert "`vidtune search`" in line and "since 20" in line and f"kill {os.getpid()}" in line
        assert running(folder) == first.holder
        assert "still running" in (running_note(folder) or "")
    finally:
        first.release()
    assert not os.path.exists(lease_file(folder))
    assert running(folder) is None and running_note(folder) is None
    Lease(folder, "vidtune resume").acquire().release()


def test_lease_of_a_dead_pid_on_this_machine_is_taken_over_saying_whose(folder, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = Machine.here()
    os.makedirs(os.path.dirname(lease_file(folder)), exist_ok=True)
    with open(lease_file(folder), "w") as f:
        f.write(Holder(me.host, dead.pid, time.time(), time.time(), "old", "vidtune search",
                       me.boot_id, me.pid_ns).to_text())
    with Lease(folder, "vidtune resume") as lease:
        assert lease.holder is not None and lease.holder.pid == os.getpid()
        assert f"from `vidtune search`, pid {dead.pid}" in capsys.readouterr().err
        assert json.loads(open(lease_file(folder)).read())["pid"] == os.getpid()


def test_stale_heartbeat_of_another_host_is_taken_over_and_a_fresh_one_refused(folder):
    os.makedirs(os.path.dirname(lease_file(folder)), exist_ok=True)
    for age, taken in ((5, False), (600, True)):
        with open(lease_file(folder), "w") as f:
            f.write(Holder("elsewhere", 1, time.time() - 900, time.time() - age, "x").to_text())
        if taken:
            Lease(folder, timeout_s=60).acquire().release()
        else:
            with pytest.raises(LeaseHeld, match=r"host elsewhere.*frees itself 5\d s from now"):
                Lease(folder, timeout_s=60).acquire()


def test_heartbeat_renews_and_a_holder_whose_lease_was_taken_stops(folder):
    lost: list[str] = []
    lease = Lease(folder, beat_s=0.05, on_lost=lost.append).acquire()
    try:
        beat = lease.holder.beat if lease.holder else 0
        time.sleep(0.3)
        assert json.loads(open(lease_file(folder)).read())["beat"] > beat
        with open(lease_file(folder), "w") as f:   # another driver took it over
            f.write(Holder("elsewhere", 1, time.time(), time.time(), "other").to_text())
        deadline = time.time() + 5
        while not lost and time.time() < deadline:
            time.sleep(0.02)
        assert lost and "lost the lease" in lost[0] and "host elsewhere" in lost[0]
    finally:
        lease.release()
    assert os.path.exists(lease_file(folder)), "the other driver's lease must stay"
