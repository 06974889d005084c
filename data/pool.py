"""Decoding processes, one per core, forked by a small helper process.

data.build.process_runner starts `python -m vidtune.data.pool WORKERS PARENT_PID`, sends it
the chunks (pickled, on its stdin) and reads one JSON line per finished chunk (on its stdout).
The helper is a fresh interpreter that imports only PyAV, NumPy and data.chunks: no torch, no
Ray, not the caller's main script. So it forks its workers cheaply and safely, before it has
any thread. The other ways are worse: `spawn` and `forkserver` run the caller's main script again
in every worker (a benchmark script or pytest imports torch: 0.5 GB and seconds each), and
forking the caller itself copies its threads' locks (a Ray worker, torch's thread pool).

A worker that dies (killed, out of memory) ends the build with an error naming its chunk's
first video; an OSError (a full disk) comes back as an OSError with its errno.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Any

from vidtune.data.chunks import CacheNotSharedError, Chunk, ChunkResult, decode_chunk
from vidtune.data.decode import shown


class DecoderDiedError(RuntimeError):
    """A decoding process died while decoding a chunk."""


def run_pool(chunks: list[Chunk], workers: int, done: Callable[[ChunkResult], None]) -> None:
    """Decode `chunks` in `workers` processes, calling done(result) as each one finishes."""
    helper = subprocess.Popen([sys.executable, "-m", "vidtune.data.pool", str(workers),
                               str(os.getpid())],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=False)
    assert helper.stdin is not None and helper.stdout is not None
    try:
        helper.stdin.write(pickle.dumps(chunks))
        helper.stdin.close()
        finished = 0
        for line in helper.stdout:
            message: dict[str, Any] = json.loads(line)
            if "error" in message:
                raise _error(message)
            result = ChunkResult(**{**message, "decoded": tuple(message["decoded"]),
                                    "errors": tuple(map(tuple, message["errors"]))})
            finished += 1
            done(result)
        if helper.wait() != 0 or finished != len(chunks):
            raise DecoderDiedError(f"the decoding helper process ended with status "
                                   f"{helper.returncode} after {finished} of {len(chunks)} "
                                   "chunks; run again, with --decode-workers 1 to see why")
    finally:
        if helper.poll() is None:
            helper.kill()
        helper.wait()


def _error(message: dict[str, Any]) -> Exception:
    if message["error"] == "OSError":
        return OSError(message["errno"], message["strerror"])
    if message["error"] == "died":
        return DecoderDiedError(
            f"a decoding process died (killed, or out of memory) while decoding one of "
            f"{message['videos']} videos, the first {message['first']}; run again, with "
            "--decode-workers 1 to find the file that kills it")
    if message["error"] in _RAISED_AS_ITSELF:
        return _RAISED_AS_ITSELF[message["error"]](message["message"])
    return RuntimeError(f"{message['error']} in a decoding process: {message['message']}")


# Errors of decode_chunk that the caller tells apart; any other comes back as a RuntimeError.
_RAISED_AS_ITSELF: dict[str, type[Exception]] = {
    "CacheNotSharedError": CacheNotSharedError, "ValueError": ValueError}


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _die_with_parent(parent: int) -> None:
    """Linux: get SIGKILL when the parent process dies, so that a killed build leaves no
    decoding processes behind (the helper, and each of its workers). A parent that died
    before this call sends nothing, and an idle worker would wait for work forever: so if
    `parent` is no longer this process's parent, exit now."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def main(workers: int, parent: int) -> int:
    _die_with_parent(parent)
    chunks: list[Chunk] = pickle.loads(sys.stdin.buffer.read())
    context = multiprocessing.get_context("fork")   # no threads here yet: fork is safe
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_die_with_parent, initargs=(os.getpid(),))
    status = 1
    try:
        futures = {pool.submit(decode_chunk, chunk): chunk for chunk in chunks}
        for future in as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool:
                videos = futures[future].videos
                _send({"error": "died", "videos": len(videos), "first": shown(videos[0][1])})
                return status
            except OSError as exc:
                _send({"error": "OSError", "errno": exc.errno,
                       "strerror": exc.strerror or str(exc)})
                return status
            except Exception as exc:  # noqa: BLE001 - passed on to the caller, by kind
                _send({"error": type(exc).__name__, "message": str(exc)})
                return status
            _send(asdict(result))
        status = 0
    finally:   # on an error, do not wait for the other chunks
        pool.shutdown(wait=status == 0, cancel_futures=True)
    return status


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
