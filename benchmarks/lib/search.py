"""Benchmark: what the search costs and what it buys, measured side by side in one run.

1. Epoch time of a trial inside Ray (a real one-trial run_search, default model and data)
   against the same epoch in the plain loop (run_trial in this process, same threads).
   Goal: Ray <= 1.05x the plain loop (epoch_time.py).
2. Data-loading share of epoch time (bench_data's measurement, same threads). Goal <= 5 %
   (data_share.py).
3. Search efficiency on a reduced synthetic benchmark: ASHA + TPE (run_search as shipped)
   against random search with the full budget (Optuna RandomSampler, no early stopping), at
   equal trial counts, over several seeds. Goal: best val acc within 1 point, <= 1/3 the epochs.
   Also measured: the same ASHA with its promotion cap on (`vidtune search --asha-cap`), and,
   from the random searches' full learning curves, how well early epochs rank the configs:
   rank correlation with the last epoch, and successive halving at ASHA's rungs replayed in
   hindsight (efficiency.py, curves.py).
4. Per-trial overhead: inside the trial (Ray's time_total_s minus the epochs) and around it
   (part 1's one-trial search minus its trial; a sequential search of no-op-sized trials:
   start-to-start interval minus the epoch) (overhead.py).
5. Fractional GPUs: Ray with one GPU (a fake one on a CPU machine) and >= 4 CPUs,
   gpus_per_trial=0.25; the most trials seen running at once. Goal: 4 (gpus.py).
6. Packed trials on a real GPU: measured by `make gpu-check` (gpu_check.py), not here.

Ray is reached only through the driver (vidtune.trainable.tune.driver): one embedded local
Ray (address="local", never joined), sized by the SearchConfig of part 1, serves every part.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.lib.common import stage, write_section
from benchmarks.lib.data_share import measure_data_share
from benchmarks.lib.efficiency import efficiency
from benchmarks.lib.epoch_time import EpochTimes, plain_loop, ray_trial
from benchmarks.lib.gpus import packing
from benchmarks.lib.overhead import noop_overhead
from benchmarks.lib.plan import Plan, search_cfg
from benchmarks.lib.search_report import KEY, render
from vidtune.data import load_arrays
from vidtune.search_spaces import get_space
from vidtune.trainable.core.trial import trial_configs
from vidtune.trainable.tune.driver import init_ray, shutdown


def run_search_bench(plan: Plan, out: str | Path, results_dir: str | None = None) -> str:
    """Run every part, write the bench_search section into out, print it; returns the section.

    results_dir keeps the Ray experiments there; by default they go to a temporary folder,
    removed at the end.
    """
    took: dict[str, float] = {}
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="vidtune-bench-") as tmp:
        root = str(Path(results_dir).expanduser().resolve()) if results_dir else tmp
        with stage(took, "data caches"):   # built up front, outside every timing
            for data in {plan.overhead_data, plan.search_data, plan.tiny_data}:
                load_arrays(data, progress=True)
        # One embedded Ray for all parts (starting one costs seconds): at least 4 logical CPUs
        # and one GPU, a fake one where there is none, for part 5. Parts 1 and 3 limit their own
        # concurrency, so the extra logical CPUs never oversubscribe the cores.
        one = search_cfg(root, "overhead", space=plan.overhead_space, num_samples=1,
                         max_epochs=plan.overhead_epochs, scheduler="none", cpus_per_trial=plan.cpus,
                         gpus_per_trial=1.0 if cuda else 0.0, data=plan.overhead_data,
                         num_cpus=max(4, os.cpu_count() or 1), num_gpus=1)

        with stage(took, "part 2"):
            model_cfg, _ = trial_configs(dict(get_space(plan.overhead_space).default), one, 10)
            threads = torch.get_num_threads()
            share = measure_data_share(plan.overhead_data, model_cfg, one.batch_size,
                                       plan.data_repeats, threads=plan.cpus)
            torch.set_num_threads(threads)
        with stage(took, "part 1"):
            plain_before = plain_loop(one)

        with stage(took, "Ray start"):
            # The benchmark owns its Ray: one left running in this process would have other sizes.
            shutdown()
            init_ray(one)
        try:
            with stage(took, "part 1"):
                ray_epoch, ray_between, ray_search_s, ray_trial_s = ray_trial(one)
            with stage(took, "part 3"):
                runs = efficiency(plan, root)
            with stage(took, "part 4"):
                noop = noop_overhead(plan, root)
            with stage(took, "part 5"):
                pack = packing(plan, root)
        finally:
            shutdown()
        with stage(took, "part 1"):   # the plain loop again, without Ray: drift shows as a spread
            plain_after = plain_loop(one)
        times = EpochTimes([plain_before[0], plain_after[0]], ray_epoch, [plain_before[1], plain_after[1]],
                           ray_between, ray_search_s, ray_trial_s)
    body = render(plan, times, share, runs, noop, pack, took)
    write_section(out, KEY, body)
    print(body)
    print(f"\nwritten to {out}", file=sys.stderr)
    return body
