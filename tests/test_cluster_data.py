"""The clip cache of a two-node Ray cluster: built once, by Ray tasks on both nodes, into the
shared cache; the search's trials on every node open it and decode nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
from test_build import make_folder, slow_folder

from vidtune.data import DataConfig
from vidtune.data.build import load_source
from vidtune.data.catalogue import folder_catalogue
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.tune.cluster_cache import ray_runner
from vidtune.trainable.tune.driver import run_search

pytestmark = pytest.mark.slow


@pytest.fixture
def two_nodes(own_ray):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        own_ray(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ray_tasks_on_both_nodes_build_the_cache(tmp_path, two_nodes):
    # Videos that take a while each, so that both nodes' workers are up before the work is done.
    folder = slow_folder(tmp_path / "shared" / "videos", per_class=8)
    catalogue = folder_catalogue(folder)
    seen = []

    def spy(chunks, done):   # the real Ray runner; it only records where each chunk ran
        ray_runner(chunks, lambda result: (seen.append(result), done(result)))

    arrays, report = load_source(catalogue, 4, 48, 64, tmp_path / "shared" / "cache",
                                 progress=False, workers=2, runner=spy)
    assert report.decoded == 16 and len(seen) >= 2
    assert len({r.node for r in seen}) == 2, f"all chunks ran on {seen[0].node}"
    local, _ = load_source(catalogue, 4, 48, 64, tmp_path / "local", progress=False, workers=1)
    np.testing.assert_array_equal(arrays.clips, local.clips)
    np.testing.assert_array_equal(arrays.labels, local.labels)


def test_a_search_on_the_cluster_decodes_once_and_its_trials_never(tmp_path, two_nodes):
    folder = make_folder(tmp_path / "shared" / "videos", per_class=6)
    cache = tmp_path / "shared" / "cache"
    data = DataConfig(source=str(folder), frames=4, height=24, width=36, cache_dir=str(cache))
    cfg = SearchConfig(space="tiny", num_samples=4, max_epochs=1, grace_period=1, name="c",
                       address=two_nodes.address, storage=str(tmp_path / "shared" / "results"),
                       data=data)
    outcome = run_search(cfg)
    (store,) = (cache / "folders").iterdir()                          # built once, here
    built = (store / "manifest.json").stat().st_mtime_ns
    assert outcome.num_trials == 4 and outcome.num_errors == 0, outcome.errors
    nodes = set()
    for progress in Path(outcome.experiment_path).glob("trial_*/progress.csv"):
        nodes |= set(pd.read_csv(progress, dtype={"node_id": str})["node_id"])
    assert len(nodes) == 2, f"trials ran on {nodes}"
    assert (store / "manifest.json").stat().st_mtime_ns == built
    assert sorted(p.name for p in (cache / "folders").iterdir()) == [store.name]
