"""Shared fixtures: tiny real configs (few clips, few frames, small frames, CPU), codec checks,
and the trials' progress.csv read independently of the code under test.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from vidtune.data import DataConfig

# Two cores in CI: keep torch from oversubscribing when Ray workers run beside pytest.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """@pytest.mark.gpu tests need a CUDA device: without one they are skipped, saying so."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        # The marker itself: item.keywords also holds every folder name on the path (a
        # checkout in a folder named gpu would skip the whole suite).
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One data cache for the whole session, so the tiny synthetic set is generated once."""
    path = tmp_path_factory.mktemp("vidtune-cache")
    os.environ["VIDTUNE_CACHE"] = str(path)
    return str(path)


# The embedded Ray the tests share: ray.init and ray.shutdown cost seconds each on 2 cores.
SHARED_RAY = {"address": "local", "num_cpus": 2, "include_dashboard": False, "log_to_driver": False}


class SharedRay:
    """One embedded Ray (2 CPUs, no GPU; address="local", so no stray cluster is joined) for
    every test that needs no other. up() starts it if it is down; own(**kwargs) ends it and
    starts the Ray a test needs (fake GPUs, a runtime_env, a cluster's address)."""

    def up(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(**SHARED_RAY)

    def own(self, **kwargs) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        ray.init(**kwargs)


@pytest.fixture(scope="session")
def shared_ray(cache_dir) -> Iterator[SharedRay]:
    """The session's Ray: up() in a test or a module's fixture, left up for the next one, ended
    once at the end. Started after cache_dir, so its workers see $VIDTUNE_CACHE."""
    yield SharedRay()
    import ray

    ray.shutdown()


@pytest.fixture
def local_ray(shared_ray) -> None:
    """The shared Ray, up for this test."""
    shared_ray.up()


@pytest.fixture
def own_ray(shared_ray) -> Iterator[Callable[..., None]]:
    """start(**ray.init kwargs): a Ray of this test's own, ended with the test (the shared one
    starts again for the next test that asks)."""
    yield shared_ray.own
    import ray

    ray.shutdown()


@pytest.fixture
def no_ray(shared_ray) -> None:
    """No Ray running as the test starts (the shared one is ended), so that the test can check
    that what it runs starts none."""
    import ray

    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data(cache_dir) -> DataConfig:
    """200 clips of 6x16x16: enough for a tiny model to beat chance clearly in a few epochs."""
    return DataConfig(num_clips=200, frames=6, height=16, width=16, noise=0.2, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def codec_available() -> Callable[[str, str], bool]:
    """check(codec, consequence) -> whether this FFmpeg build (av, pinned) can encode codec.

    CI (the CI variable set, as `CI=true bash .ci/run` does) must encode every codec the tests
    use, so there a missing one fails the test. Locally it warns, naming the codec and what
    the test does instead (skip it or use another codec), and returns False.
    """

    def check(codec: str, consequence: str) -> bool:
        import av  # here: the CUDA tests run where PyAV is not installed (make gpu-check)

        if codec in av.codecs_available:
            return True
        message = f"this FFmpeg build (av {av.__version__}) cannot encode {codec}: {consequence}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {message}", pytrace=False)
        warnings.warn(message, stacklevel=2)
        return False

    return check


@pytest.fixture(scope="session")
def read_progress() -> Callable[[str | Path], dict[str, pd.DataFrame]]:
    """read(experiment folder) -> {trial_id: the rows of its progress.csv}.

    What the trials themselves wrote, read with pandas alone: the reference that the results
    loader, the analysis and retrain are checked against, not a product of their code.
    Trials that reported nothing are left out. These tests never resume, so each epoch must
    appear once.
    """

    def read(experiment: str | Path) -> dict[str, pd.DataFrame]:
        out = {}
        for path in sorted(Path(experiment).glob("trial_*/progress.csv")):
            if path.stat().st_size == 0:
                continue
            # As text: a hex id such as 61e32900 would otherwise be read as the float inf.
            df = pd.read_csv(path, dtype={"trial_id": str})
            (trial_id,) = df["trial_id"].unique()
            assert df["epoch"].is_unique and df["epoch"].is_monotonic_increasing, path
            out[trial_id] = df
        return out

    return read


@pytest.fixture(scope="session")
def read_snapshot() -> Callable[[str | Path], list[dict]]:
    """read(experiment folder) -> the trials of Ray's newest experiment snapshot.

    In creation order, each a dict with Ray's trial_id, status (PENDING, RUNNING, TERMINATED,
    ERROR) and config: parsed here with json alone, like read_progress.
    """

    def read(experiment: str | Path) -> list[dict]:
        newest = max(Path(experiment).glob("experiment_state-*.json"))
        return [json.loads(state) for state, _ in json.loads(newest.read_text())["trial_data"]]

    return read
