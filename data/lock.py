"""BuildLock: one process builds a cache store; the others wait for it, then open its store.

The lock is an flock(2) on a file beside the store, so the kernel releases it when its holder
dies, however it dies (on NFS, Linux maps flock to the server's byte-range locks). The holder
removes the file when it is done; a waiter that then finds its lock on a removed file tries
again, so two processes never hold it at once. The holder writes "host pid" into the file, so
a waiter can say whom it waits for.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType


class BuildLock:
    """`with BuildLock(store_path):` holds the build lock of that store (waiting for it).

    `waited` tells afterwards whether another process held it first: then the store is most
    likely built, and the caller opens it before building anything.
    """

    def __init__(self, store: str | Path, progress: bool = True, poll_s: float = 0.2) -> None:
        store = Path(store)
        self.path = store.parent / f".{store.name}.lock"
        self.store, self.progress, self.poll_s = store, progress, poll_s
        self.fd: int | None = None
        self.waited = False

    def _holder(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return "another process"
        host, _, pid = text.partition(" ")
        return f"process {pid} on {host}" if pid else "another process"

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if not self.waited and self.progress:
                    print(f"waiting for the clip cache {self.store}, which {self._holder()} is "
                          "building", file=sys.stderr, flush=True)
                self.waited = True
                time.sleep(self.poll_s)
                continue
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:   # its holder removed it just before we locked it
                same = False
            if not same:
                os.close(fd)
                continue
            break
        self.fd = fd
        try:   # best effort: on a full disk even these few bytes may not fit
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        except OSError:
            pass
        if self.waited and self.progress:
            print(f"the clip cache {self.store} is free after {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)   # while still locked: see the class docstring
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
