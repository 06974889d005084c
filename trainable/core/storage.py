"""Where a search's files live: a local folder or a storage URI (s3://, gs://, a registered
scheme), and the small files vidtune reads and writes there. No Ray here.

Every URI goes through filesystem(): a scheme registered with register_filesystem first, then
pyarrow's own. Ray gets the same filesystem (trainable/tune/driver.py), so a registered scheme
reaches the trials too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

# scheme -> resolve(uri) -> (pyarrow filesystem, path on it), for schemes pyarrow does not know.
_FILESYSTEMS: dict[str, Callable[[str], tuple[Any, str]]] = {}


def is_uri(path: str) -> bool:
    """'s3://bucket/x' and the like, as opposed to a local path."""
    return bool(_URI.match(path))


def register_filesystem(scheme: str, resolve: Callable[[str], tuple[Any, str]]) -> None:
    """Serve `scheme://...` storage with your own pyarrow filesystem: resolve(uri) returns
    (filesystem, path on it), the way pyarrow.fs.FileSystem.from_uri does for s3:// or gs://.
    The filesystem must pickle (Ray sends it to the trials)."""
    _FILESYSTEMS[scheme.lower()] = resolve


def filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) of a storage URI: registered schemes first, then
    pyarrow's own (s3, gs, hdfs, file, ...). Every URI vidtune reads or writes goes through it."""
    scheme = uri.split("://", 1)[0].lower()
    if scheme in _FILESYSTEMS:
        return _FILESYSTEMS[scheme](uri)
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def read_text(folder: str, name: str) -> str | None:
    """A small file of an experiment folder (local path or URI); None if it is not there."""
    if is_uri(folder):
        fs, base = filesystem(folder)
        try:
            with fs.open_input_stream(f"{base.rstrip('/')}/{name}") as f:
                return f.read().decode()
        except (FileNotFoundError, OSError):
            return None
    path = Path(folder).expanduser() / name
    return path.read_text() if path.is_file() else None


def write_text(folder: str, name: str, text: str) -> None:
    """Write a small file into an experiment folder (local path or URI)."""
    if is_uri(folder):
        fs, base = filesystem(folder)
        fs.create_dir(base, recursive=True)
        with fs.open_output_stream(f"{base}/{name}") as f:
            f.write(text.encode())
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / name).write_text(text)


def beside_results(experiment_path: str, name: str) -> Path:
    """A local folder for what a command derives from a search: RESULTS_DIR/<name>, or, for
    remote storage (a URI), ./<experiment name>-<name> in the working directory."""
    if is_uri(experiment_path):
        return Path.cwd() / f"{experiment_path.rstrip('/').rsplit('/', 1)[-1]}-{name}"
    return Path(experiment_path).expanduser() / name
