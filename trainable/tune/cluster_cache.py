"""The clip cache of a cluster, built once by Ray tasks spread over its nodes.

`vidtune search --address` builds the cache before any trial starts: data.build cuts the
videos into chunks, and each chunk runs as a Ray task (one CPU, spread over the nodes) that
decodes into its part file in the store's temporary folder on the shared --cache-dir. The
driver joins the parts and seals the store. Trials on every node then open that same store;
none decodes anything (run_trial loads with decode=False, and fails rather than decode).

The cache folder and the videos must be at the same paths on every node: a task on a node that
cannot see them fails the build, naming the node and the folder. The data layer does the work
(data.chunks.decode_chunk, plain Python); this module only runs it as Ray tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import ray
from ray.exceptions import RayTaskError

from vidtune.data import DataConfig, load_arrays
from vidtune.data.arrays import VideoArrays
from vidtune.data.build import load_source
from vidtune.data.catalogue import read_catalogue
from vidtune.data.chunks import Chunk, ChunkResult, decode_chunk
from vidtune.data.store import StoreWriteError


@ray.remote(num_cpus=1, max_retries=2)   # retried where a node is lost, not for a bad video
def _decode_task(chunk: Chunk) -> ChunkResult:
    result = decode_chunk(chunk, threads=1)
    return replace(result, node=ray.get_runtime_context().get_node_id())


def ray_runner(chunks: list[Chunk], done: Callable[[ChunkResult], None]) -> None:
    """data.build's Runner on the running Ray cluster: one task per chunk, SPREAD over the
    nodes; done(result) as each one finishes. A task's error is raised as itself."""
    pending = [_decode_task.options(scheduling_strategy="SPREAD").remote(chunk)
               for chunk in chunks]
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                done(ray.get(ready[0]))
            except RayTaskError as exc:
                cause = exc.cause
                raise (cause if isinstance(cause, Exception) else exc) from None
    finally:
        for ref in pending:
            ray.cancel(ref)


def build_cache(data: DataConfig, progress: bool = True) -> VideoArrays:
    """cfg's clips from its cache, which Ray tasks build first where it is missing (the
    synthetic benchmark is generated here, on the driver, as always)."""
    data = data.resolved()
    if data.is_synthetic:
        return load_arrays(data, progress=progress)
    catalogue = read_catalogue(data.source, data.split_file)
    workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    try:
        arrays, _report = load_source(catalogue, data.stored, data.height, data.width,
                                      data.cache_dir, progress=progress, workers=workers,
                                      runner=ray_runner)
    except StoreWriteError as exc:   # a full or read-only cache: bad input, as in preflight
        raise ValueError(str(exc)) from None
    return arrays
