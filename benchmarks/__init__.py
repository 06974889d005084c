"""The benchmarks: the figures of docs/benchmarks.md, measured against the project's goals.

Beside the package, not in it (as Syne Tune keeps benchmarking/ beside syne_tune/): they use
vidtune as any user's code does, are not installed with it, and run from the repository root
with the dev install, `make bench` (all of them) or one at a time:

    python -m benchmarks.bench_search --smoke

- bench_data.py        data loading's share of an epoch
- bench_search.py      what the search costs and what it buys, side by side in one run
- bench_race.py        wall time to a good model: vidtune against stock Ray Tune and Optuna
- bench_warm_start.py  a warm-started search against the same search started cold
- bench_decode.py      decoding a long video, and a data set's clip cache
- bench_scale.py       thousands of sub-second trials, the driver killed once
- gpu_check.py         `make gpu-check` on a CUDA machine
- lib/                 the measurements, plans and markdown sections they share
"""
