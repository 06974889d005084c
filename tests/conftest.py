"""Shared fixtures: tiny real configs (few clips, few frames, small frames, CPU)."""

from __future__ import annotations

import os

import pytest
import torch

from vidtune.data import DataConfig

# Two cores in CI: keep torch from oversubscribing when Ray workers run beside pytest.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One data cache for the whole session, so the tiny synthetic set is generated once."""
    path = tmp_path_factory.mktemp("vidtune-cache")
    os.environ["VIDTUNE_CACHE"] = str(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_data(cache_dir) -> DataConfig:
    """200 clips of 6x16x16: enough for a tiny model to beat chance clearly in a few epochs."""
    return DataConfig(num_clips=200, frames=6, height=16, width=16, noise=0.2, cache_dir=cache_dir)
