"""Joining a Ray cluster (--address), with a failed connection or authentication as one line.

Ray 2.60 turns token authentication on by default: `ray start --head` uses it when a token
exists (~/.ray/auth_token, or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH), `ray.init()` of a new
local Ray always does. A process joining a cluster turns it on only with RAY_AUTH_MODE=token,
or for `--address auto` when it finds a token; never for an explicit HOST:PORT, so that a
local token is not sent to an address typed by hand (ray._private.worker.init). A driver
without it gets Ray's AuthenticationError or a failed RPC, and an address where no cluster
listens gets a ConnectionError with a traceback, after minutes: Ray tries its GCS client 20
times, and each try at a port nobody answers waits ~40 s for the GCS (measured: 2 min for 3
tries). ClusterError says instead, in one line, which address failed and what to do; a plain
TCP connection tried first turns an address where nothing listens into that line in seconds.
"""

from __future__ import annotations

import os
import re
import socket

import ray

AUTH_FIX = ("export RAY_AUTH_MODE=token and the cluster's token in this shell "
            "(RAY_AUTH_TOKEN=<the head's ~/.ray/auth_token>, or copy that file to ~/.ray/auth_token "
            "here), as on every node of the cluster")
START_FIX = ("start the head with `ray start --head --port 6379` (RAY_AUTH_MODE=token exported), "
             "then pass its HOST:PORT, or leave out --address for an embedded Ray")


class ClusterError(ValueError):
    """The Ray cluster at an address could not be joined; the message names the fix."""


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first: Ray wraps the GCS client's error
    (AuthenticationError, as text in a RuntimeError) in a bare ConnectionError."""
    out: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in out:
        out.append(link)
        link = link.__cause__ or link.__context__
    return out


def _reason(exc: BaseException) -> str:
    """What Ray said, short: the innermost error's last line (a traceback quoted in a message
    ends with its exception's line), its first sentence, without the exception's module."""
    lines = [line.strip() for line in str(_chain(exc)[-1]).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    text = re.sub(r"^[\w.]+(Error|Exception): ", "", text).split(". ")[0]
    return text if len(text) <= 160 else text[:157] + "..."


def is_auth_failure(exc: BaseException) -> bool:
    """Did the cluster refuse this process's authentication (or lack of it)?"""
    from ray.exceptions import AuthenticationError

    for link in _chain(exc):
        if isinstance(link, AuthenticationError):
            return True
        text = str(link).lower()
        if any(word in text for word in ("authenticat", "auth token", "invalidauthtoken",
                                         "auth_mode")):
            return True
    return False


def cluster_error(address: str, exc: BaseException) -> ClusterError:
    """One line naming the address, what went wrong and the fix."""
    if is_auth_failure(exc):
        mode = os.environ.get("RAY_AUTH_MODE", "unset")
        return ClusterError(f"the Ray cluster at {address} refused this driver's authentication "
                            f"(RAY_AUTH_MODE is {mode}): {AUTH_FIX}; Ray said: {_reason(exc)}")
    where = (f"for --address auto (RAY_ADDRESS={os.environ['RAY_ADDRESS']})"
             if address == "auto" and os.environ.get("RAY_ADDRESS") else f"at {address}")
    return ClusterError(f"cannot reach a Ray cluster {where}: {START_FIX}; Ray said: {_reason(exc)}")


def probe(address: str, timeout_s: float = 5.0) -> None:
    """ConnectionError unless something accepts a TCP connection at HOST:PORT. Addresses of
    other forms (`auto`, `ray://...`) are left to Ray."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "/" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or exc})") from None


def join_cluster(address: str) -> None:
    """ray.init(address=...) of an existing cluster; ClusterError if it cannot be joined."""
    try:
        probe(os.environ.get("RAY_ADDRESS", "") if address == "auto" else address)
        ray.init(address=address, log_to_driver=False)
        ray.cluster_resources()   # the first call to the cluster's GCS after connecting
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the user needs the address and the fix
        if ray.is_initialized():
            ray.shutdown()
        raise cluster_error(address, exc) from None
