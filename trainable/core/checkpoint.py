"""Trial checkpoints on disk (no Ray): a folder with state.pt and metrics.json."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

STATE = "state.pt"
METRICS = "metrics.json"


def save_state(folder: str | Path, state: dict[str, Any], metrics: dict[str, Any]) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / STATE)
    (folder / METRICS).write_text(json.dumps(metrics))


def load_state(folder: str | Path) -> dict[str, Any]:
    """Load a checkpoint's state (tensors only unpickled: weights_only=True)."""
    return torch.load(Path(folder) / STATE, map_location="cpu", weights_only=True)


def load_first_readable(folders: Iterable[str | Path]) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint that loads, trying `folders` in order (newest first).

    A corrupt or unreadable checkpoint is skipped with a warning naming it, so a trial falls
    back to the previous one instead of failing or starting over.
    """
    for folder in folders:
        try:
            return load_state(folder), Path(folder)
        except Exception as exc:  # noqa: BLE001 - any failure to read means "try the older one"
            warnings.warn(f"checkpoint {folder} is unreadable ({type(exc).__name__}: {exc}); "
                          "falling back to the previous checkpoint", stacklevel=2)
    return None


def sibling_checkpoints(latest: str | Path) -> list[Path]:
    """`latest` and the older checkpoint_* folders beside it, newest first.

    If `latest` is gone, every checkpoint_* beside it, newest first: the experiment snapshot
    that named it is older than the trial's newest checkpoints, and the trial's checkpoint
    keeper deleted it as newer ones arrived (trainable/tune/retention.py).
    """
    latest = Path(latest)
    if not latest.is_dir():
        return sorted((p for p in latest.parent.glob("checkpoint_*") if p.is_dir()), reverse=True)
    older = sorted((p for p in latest.parent.glob("checkpoint_*") if p.is_dir() and p != latest
                    and p.name < latest.name), reverse=True)
    return [latest, *older]
