"""What the benchmark scripts share: the measurements, the plans and the markdown sections.

benchmarks/bench_*.py and benchmarks/gpu_check.py are the entry points (argparse, then one call
into here); each writes its own section of the markdown file.

- common.py        machine line, Verdict (PASS / FAIL / not resolvable), section writing
- data_share.py    bench_data, and part 2 of bench_search: data loading's share of an epoch
- plan.py          the sizes of a bench_search run (full or --smoke)
- trial_reports.py each trial's reports, read through load_experiment
- curves.py        pure functions: halving in hindsight, rank agreement, overlapping spans
- epoch_time.py    part 1: a trial's epoch inside Ray against the plain loop
- efficiency.py    part 3: ASHA + TPE (capped too) against random search, full budget
- overhead.py      part 4: what Ray adds around a trial
- gpus.py          part 5: fractional GPUs; part 6's packed searches on a real GPU
- gpu_util.py      GPU utilization sampled by NVML (pynvml) or nvidia-smi
- gpu_check.py     `make gpu-check` (part 6): CUDA tests, auto probe, GPU data share, packing
- search_report.py the bench_search section
- search.py        run_search_bench: every part, one embedded Ray through the driver
- decode.py        bench_decode: a long video's decode, and a data set's cache build
- scale.py         bench_scale: thousands of trials, the driver killed once
- scale_report.py  the bench_scale section
- throughput.py    bench_throughput: FLOPs per clip, the matmul peak, the levers
                   (bf16, channels_last, inference_mode, compile), clips/s by config class,
                   where an epoch's time goes, fp32 against the new default's accuracy
- warm_start.py    run_warm_start_bench: warm-started against cold searches, epochs to the
                   cold best (benchmarks/bench_warm_start.py)

Ray is reached only through vidtune.trainable.tune.driver (run_search, init_ray, shutdown,
run_repeats). Names are imported on first use, so `import benchmarks.lib` and the
Ray-free parts (common, data_share, curves) import no Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidtune._lazy import lazy_names

if TYPE_CHECKING:
    from benchmarks.lib.common import Verdict, machine_line, verdict, write_section
    from benchmarks.lib.curves import halving_in_hindsight, max_overlap, rank_agreement
    from benchmarks.lib.data_share import DataShare, measure_data_share, run_data_bench
    from benchmarks.lib.decode import run_decode_bench
    from benchmarks.lib.efficiency import SearchRun
    from benchmarks.lib.epoch_time import EpochTimes
    from benchmarks.lib.gpu_check import GpuCheck, run_gpu_check
    from benchmarks.lib.gpus import PackedRun
    from benchmarks.lib.overhead import NoopOverhead
    from benchmarks.lib.plan import Plan, make_plan
    from benchmarks.lib.scale import ScalePlan, make_scale_plan, run_scale
    from benchmarks.lib.search import run_search_bench
    from benchmarks.lib.throughput import run_throughput_bench
    from benchmarks.lib.warm_start import run_warm_start_bench

_WHERE = {   # public name -> module under benchmarks.lib
    "Verdict": "common",
    "machine_line": "common",
    "verdict": "common",
    "write_section": "common",
    "halving_in_hindsight": "curves",
    "max_overlap": "curves",
    "rank_agreement": "curves",
    "DataShare": "data_share",
    "measure_data_share": "data_share",
    "run_data_bench": "data_share",
    "run_decode_bench": "decode",
    "SearchRun": "efficiency",
    "EpochTimes": "epoch_time",
    "GpuCheck": "gpu_check",
    "run_gpu_check": "gpu_check",
    "PackedRun": "gpus",
    "NoopOverhead": "overhead",
    "Plan": "plan",
    "make_plan": "plan",
    "run_search_bench": "search",
    "ScalePlan": "scale",
    "make_scale_plan": "scale",
    "run_scale": "scale",
    "run_throughput_bench": "throughput",
    "run_warm_start_bench": "warm_start",
}

__all__ = [
    "DataShare",
    "EpochTimes",
    "GpuCheck",
    "NoopOverhead",
    "PackedRun",
    "Plan",
    "ScalePlan",
    "SearchRun",
    "Verdict",
    "halving_in_hindsight",
    "machine_line",
    "make_plan",
    "make_scale_plan",
    "max_overlap",
    "measure_data_share",
    "rank_agreement",
    "run_data_bench",
    "run_decode_bench",
    "run_gpu_check",
    "run_scale",
    "run_search_bench",
    "run_throughput_bench",
    "run_warm_start_bench",
    "verdict",
    "write_section",
]


__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__, globals())
