"""One live driver per search: an exclusive lease on the experiment folder (no Ray here).

`vidtune search` and `vidtune resume` take the lease before Ray starts and give it back when
the driver has written its summary. A second driver on the same folder is refused with one
line naming the holder (host, pid, start time) and the fix. Readers (analyze, retrain,
evaluate, predict) never take it; running() tells them that a search is still running.

The lease is a small file, driver.lease, in the experiment folder (not *.json: Ray copies
every .json of the folder back over the originals at each sync of a restored experiment).
It holds the holder's host, pid, start time, a token and a heartbeat that a thread of the
holder rewrites every BEAT_S seconds. flock(2) is not used: on NFS it may not hold across
hosts (mounts with `nolock`, some NAS and FUSE filesystems), and on object stores it does not
exist. Instead:

- Taking a free lease is atomic on a path: the file is written under a temporary name and
  hard-linked into place (link(2) fails if the name exists, also on NFS), so a reader never
  sees half a lease. On a URI (no atomic create) the driver writes it, waits SETTLE_S and
  reads it back: of two drivers that wrote at once, the one whose token is not there stops.
- A lease whose holder is gone is taken over (stale(), the rules):
    same machine (host, boot and pid namespace): the pid is dead, a zombie, or a new process
        under the same pid (its start time differs) - taken over at once, so a SIGKILLed
        driver never leaves the search locked;
    same host name, another boot: the machine rebooted - taken over at once;
    another machine: the heartbeat is older than TIMEOUT_S (60 s) by this host's clock.
  On a path, taking over renames the stale file away first (rename is atomic: of two
  drivers taking over at once, one finds nothing to rename and starts again).
- A holder's host that cannot be reached (crashed, cut off) cannot renew its heartbeat, so
  its lease is taken over TIMEOUT_S after the last beat. That is safe because the holder
  stops itself first: a holder that could not renew for TIMEOUT_S - 2 * BEAT_S seconds (its
  storage is gone), or that finds another driver's token in the file (it was frozen past
  the timeout), exits at once (status 3) without writing another byte. So two drivers never
  write the folder at the same time, as long as the hosts' clocks agree within 2 * BEAT_S.
"""

from __future__ import annotations

import atexit
import enum
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vidtune.trainable.core.storage import filesystem, is_uri

LEASE_FILE = "driver.lease"
TIMEOUT_S = float(os.environ.get("VIDTUNE_LEASE_TIMEOUT_S", 60.0))   # heartbeat age: stale
BEAT_S = float(os.environ.get("VIDTUNE_LEASE_BEAT_S", 5.0))          # the holder rewrites it
SETTLE_S = 1.0      # URI storage: wait before reading a new lease back
LOST_STATUS = 3     # exit status of a driver that lost its lease


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Machine:
    """This machine and pid namespace, as the stale rules compare them."""

    host: str
    boot_id: str = ""    # /proc/sys/kernel/random/boot_id: changes at every boot
    pid_ns: str = ""     # /proc/self/ns/pid: a container sharing the host name has its own

    @classmethod
    def here(cls) -> Machine:
        try:
            pid_ns = os.readlink("/proc/self/ns/pid")
        except OSError:
            pid_ns = ""
        return cls(socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), pid_ns)


def process_start(pid: int) -> str:
    """The start time of process `pid` in clock ticks since boot (field 22 of /proc/PID/stat),
    which tells a reused pid from the original; "" where /proc cannot tell."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rsplit(")", 1)[-1].split()   # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else ""


def pid_alive(pid: int, started: str = "") -> bool:
    """Is process `pid` alive on this machine, and still the one that started at `started`?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process: alive
        pass
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] in ("Z", "X"):   # killed, not yet reaped by its parent
        return False
    return not (started and len(fields) > 19 and fields[19] != started)


@dataclass(frozen=True)
class Holder:
    """What driver.lease says about the driver that holds it."""

    host: str
    pid: int
    started: float           # wall clock (time.time()) when it took the lease
    beat: float              # wall clock of its last heartbeat
    token: str               # unique per lease taken
    command: str = "vidtune"  # e.g. "vidtune resume"
    boot_id: str = ""
    pid_ns: str = ""
    pid_start: str = ""      # process_start(pid)

    def to_text(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Holder:
        """ValueError if the text is not a lease."""
        try:
            d = json.loads(text)
            return cls(host=str(d["host"]), pid=int(d["pid"]), started=float(d["started"]),
                       beat=float(d["beat"]), token=str(d["token"]),
                       command=str(d.get("command", "vidtune")), boot_id=str(d.get("boot_id", "")),
                       pid_ns=str(d.get("pid_ns", "")), pid_start=str(d.get("pid_start", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a lease ({exc})") from None

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return f"`{self.command}`, pid {self.pid} on host {self.host}, since {since}"


class Verdict(enum.Enum):
    LIVE = "live"
    DEAD_PID = "its process is gone"
    REBOOTED = "its machine rebooted"
    STALE = "its heartbeat stopped"
    DAMAGED = "the lease file is damaged and old"


def stale(holder: Holder, me: Machine, now: float, timeout_s: float = TIMEOUT_S,
          alive: Callable[[int, str], bool] = pid_alive) -> Verdict:
    """The rule: may a driver on `me`, at wall time `now`, take over `holder`'s lease?"""
    if holder.host == me.host and holder.boot_id and me.boot_id and holder.boot_id != me.boot_id:
        return Verdict.REBOOTED
    same_machine = holder.host == me.host and holder.pid_ns == me.pid_ns
    if same_machine:
        return Verdict.LIVE if alive(holder.pid, holder.pid_start) else Verdict.DEAD_PID
    # Another machine: only its heartbeat tells. Never taken over while it is fresh.
    return Verdict.STALE if now - holder.beat > timeout_s else Verdict.LIVE


class LeaseHeld(ValueError):
    """Another live driver holds the search's lease (the command exits 2, as for bad input)."""


class LeaseLost(RuntimeError):
    """This driver's lease was taken over, or could not be renewed."""


# -- where the lease file lives: a path (local disk, NFS) or a URI (pyarrow) --------------
class _PathFile:
    def __init__(self, folder: str) -> None:
        self.path = Path(folder).expanduser() / LEASE_FILE
        self.made: list[Path] = []   # folders the lease created, deepest first

    def read(self) -> tuple[str | None, float]:
        """(text, mtime); (None, 0) if there is no lease."""
        try:
            return self.path.read_text(), self.path.stat().st_mtime
        except FileNotFoundError:
            return None, 0.0

    def _tmp(self, token: str) -> Path:
        return self.path.with_name(f".{LEASE_FILE}.{token}")

    def create(self, text: str, token: str) -> bool:
        """Put the lease in place unless one is there; True if this one is now in place."""
        missing = self.path.parent
        while not missing.exists() and missing != missing.parent:
            self.made.append(missing)
            missing = missing.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp(token)
        tmp.write_text(text)
        try:
            os.link(tmp, self.path)   # atomic, and the lease appears whole
            return True
        except FileExistsError:
            return False
        except OSError:   # a filesystem without hard links: an exclusive create
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def take(self, stale_text: str, token: str) -> bool:
        """Remove the stale lease `stale_text`; False if another driver was quicker."""
        moved = self.path.with_name(f".{LEASE_FILE}.{token}.stale")
        try:
            os.rename(self.path, moved)   # atomic: of two drivers, one finds nothing
        except FileNotFoundError:
            return False
        try:
            if moved.read_text() != stale_text:   # a fresh lease of a quicker driver: back
                try:
                    os.link(moved, self.path)
                except FileExistsError:
                    pass
                return False
            return True
        finally:
            moved.unlink(missing_ok=True)

    def rewrite(self, text: str, token: str) -> None:
        tmp = self._tmp(token)
        tmp.write_text(text)
        os.replace(tmp, self.path)   # readers see the old lease or the new one, whole

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        try:   # a new search refused before it wrote anything leaves no folder behind
            for folder in self.made:
                folder.rmdir()
        except OSError:   # not empty: the search wrote there
            pass


class _UriFile:
    def __init__(self, folder: str) -> None:
        self.fs, base = filesystem(folder)
        self.base = base.rstrip("/")
        self.path = f"{self.base}/{LEASE_FILE}"

    def read(self) -> tuple[str | None, float]:
        import pyarrow.fs

        try:
            info = self.fs.get_file_info(self.path)
            if info.type == pyarrow.fs.FileType.NotFound:
                return None, 0.0
            with self.fs.open_input_stream(self.path) as f:
                text = f.read().decode(errors="replace")
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            return text, mtime
        except FileNotFoundError:
            return None, 0.0

    def create(self, text: str, token: str) -> bool:
        # No atomic create on an object store: write, wait, read back. Of two drivers that
        # wrote at once, the later write stays, and the other finds a token not its own.
        if self.read()[0] is not None:
            return False
        self.rewrite(text, token)
        time.sleep(SETTLE_S)
        return self.read()[0] == text

    def take(self, stale_text: str, token: str) -> bool:
        if self.read()[0] != stale_text:
            return False
        self.remove()
        return True

    def rewrite(self, text: str, token: str) -> None:
        self.fs.create_dir(self.base, recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write(text.encode())

    def remove(self) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass


def _file(folder: str) -> _PathFile | _UriFile:
    return _UriFile(folder) if is_uri(folder) else _PathFile(folder)


def _judge(text: str, mtime: float, me: Machine, now: float, timeout_s: float
           ) -> tuple[Holder | None, Verdict]:
    try:
        holder = Holder.from_text(text)
    except ValueError:   # damaged, e.g. a disk that filled: only its age tells
        return None, Verdict.DAMAGED if now - mtime > timeout_s else Verdict.LIVE
    return holder, stale(holder, me, now, timeout_s)


def running(folder: str, timeout_s: float = TIMEOUT_S) -> Holder | None:
    """The live driver that holds the folder's lease, if any (for the readers' note)."""
    try:
        text, mtime = _file(str(folder)).read()
    except OSError:
        return None
    if text is None:
        return None
    holder, verdict = _judge(text, mtime, Machine.here(), time.time(), timeout_s)
    return holder if verdict is Verdict.LIVE else None


def running_note(folder: str) -> str | None:
    """One line for a reader of a folder whose search is still running, else None."""
    holder = running(folder)
    if holder is None:
        return None
    return (f"note: the search is still running ({holder.describe()}); this reads its latest "
            f"snapshot, taken at most a few seconds ago")


def held_message(folder: str, holder: Holder | None, now: float, timeout_s: float) -> str:
    if holder is None:
        return (f"{folder} is in use by another driver ({LEASE_FILE} is being written); wait "
                f"for it, or, if no driver runs, remove {folder}/{LEASE_FILE}")
    age = max(0.0, now - holder.beat)
    where = (f"stop it (kill {holder.pid} on {holder.host}) and run this again"
             if holder.host == socket.gethostname() else
             f"stop it (kill {holder.pid} on {holder.host}); if that host is down, its lease "
             f"frees itself {max(0.0, timeout_s - age):.0f} s from now: run this again then")
    return (f"{folder} is in use by another driver: {holder.describe()}, last heartbeat "
            f"{age:.0f} s ago; wait for it to finish, or {where}")


class Lease:
    """`with Lease(experiment_path, "vidtune resume"):` holds the search's lease.

    acquire() raises LeaseHeld naming a live holder, takes over a stale one (notes says
    whose), and starts the heartbeat. release() stops it and removes the file.
    """

    def __init__(self, folder: str, command: str = "vidtune", timeout_s: float = TIMEOUT_S,
                 beat_s: float = BEAT_S,
                 on_lost: Callable[[str], Any] | None = None) -> None:
        self.folder, self.command = str(folder), command
        self.timeout_s, self.beat_s = timeout_s, beat_s
        self.on_lost = on_lost or _exit_lost
        self.file = _file(self.folder)
        self.me = Machine.here()
        self.notes: list[str] = []
        self.holder: Holder | None = None
        self._text = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _new(self) -> Holder:
        now = time.time()
        return Holder(self.me.host, os.getpid(), now, now, uuid.uuid4().hex, self.command,
                      self.me.boot_id, self.me.pid_ns, process_start(os.getpid()))

    def acquire(self) -> Lease:
        mine = self._new()
        text = mine.to_text()
        for _ in range(20):   # each turn: one driver was quicker to create or take over
            try:
                created = self.file.create(text, mine.token)
            except OSError as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise ValueError(f"cannot write {LEASE_FILE} in {self.folder} ({reason}); make "
                                 "it writable, or choose another --results-dir (or --storage)"
                                 ) from None
            if created:
                self.holder, self._text = mine, text
                self._thread = threading.Thread(target=self._beat, name="vidtune-lease",
                                                daemon=True)
                self._thread.start()
                atexit.register(self.release)
                return self
            found, mtime = self.file.read()
            if found is None:
                continue
            now = time.time()
            holder, verdict = _judge(found, mtime, self.me, now, self.timeout_s)
            if verdict is Verdict.LIVE:
                raise LeaseHeld(held_message(self.folder, holder, now, self.timeout_s))
            if self.file.take(found, mine.token):
                who = holder.describe() if holder else "an unreadable lease"
                age = f", last heartbeat {now - holder.beat:.0f} s ago" if holder else ""
                self.notes.append(f"took over the lease of {self.folder} from {who}: "
                                  f"{verdict.value}{age}")
                print(self.notes[-1], file=sys.stderr, flush=True)
        raise LeaseHeld(f"{self.folder}: could not take its lease, other drivers keep taking "
                        f"it; stop them and run this again")

    def _beat(self) -> None:
        """Every beat_s: check the lease is still this driver's, then renew it."""
        last_ok = time.monotonic()
        while not self._stop.wait(self.beat_s):
            try:
                found, _ = self.file.read()
                if found is None:   # gone with its folder (lost storage), not taken by another
                    raise FileNotFoundError(f"{self.folder}: the lease file is gone")
                if found != self._text:
                    other = None
                    try:
                        other = Holder.from_text(found or "")
                    except ValueError:
                        pass
                    who = other.describe() if other else "another driver"
                    if self._stop.is_set():
                        return
                    self.on_lost(f"this driver lost the lease of {self.folder} to {who}; "
                                 "it stops now and leaves the search to that driver")
                    return
                assert self.holder is not None
                renewed = Holder(**{**asdict(self.holder), "beat": time.time()})
                self.file.rewrite(renewed.to_text(), renewed.token)
                self.holder, self._text = renewed, renewed.to_text()
                last_ok = time.monotonic()
            except OSError as exc:
                if time.monotonic() - last_ok > self.timeout_s - 2 * self.beat_s:
                    self.on_lost(f"could not renew the lease of {self.folder} for "
                                 f"{time.monotonic() - last_ok:.0f} s ({exc}); this driver "
                                 "stops now, so that `vidtune resume` can take the search over")
                    return

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still this driver's."""
        if self.holder is None:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.beat_s + 5)
        try:
            if self.file.read()[0] == self._text:
                self.file.remove()
        except OSError:
            pass   # storage gone: the lease goes stale and is taken over
        self.holder = None
        atexit.unregister(self.release)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _exit_lost(message: str) -> None:
    """A driver without its lease must not write another byte: exit at once (no cleanup;
    Ray's own processes end with their driver)."""
    print(f"vidtune: error: {message}", file=sys.stderr, flush=True)
    os._exit(LOST_STATUS)
