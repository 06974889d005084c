"""The sizes of a search benchmark run: the full plan, or --smoke's tiny one."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vidtune.data import DataConfig
from vidtune.trainable.core.search_config import SearchConfig


@dataclass(frozen=True)
class Plan:
    """Every size of the run; --smoke swaps in tiny ones."""

    smoke: bool
    overhead_data: DataConfig          # parts 1, 2 (the default CPU config)
    overhead_space: str                # its seed default is the model of parts 1, 2
    overhead_epochs: int
    cpus: int                          # cpus_per_trial of part 1 = torch threads of parts 1, 2
    data_repeats: int
    search_data: DataConfig            # part 3 (reduced synthetic config)
    search_space: str
    num_samples: int
    max_epochs: int
    seeds: tuple[int, ...]
    noop_trials: int                   # part 4 (0: skip the no-op search)
    pack_trials: int                   # part 5
    pack_epochs: int
    tiny_data: DataConfig = field(default_factory=lambda: DataConfig(
        num_clips=200, frames=6, height=16, width=16, noise=0.2))

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds is empty; part 3 needs at least one seed (--seeds 1)")
        if self.num_samples < 1:
            raise ValueError(f"num_samples is {self.num_samples}, but must be >= 1")


def make_plan(smoke: bool = False, seeds: int | None = None, num_samples: int | None = None,
              cpus_per_trial: int | None = None, data_repeats: int | None = None) -> Plan:
    """The full plan (about 20 minutes on 2 cores) or the smoke one, with the given overrides."""
    if smoke:
        tiny = DataConfig(num_clips=64, frames=4, height=16, width=16, noise=0.2)
        plan = Plan(smoke=True, overhead_data=tiny, overhead_space="tiny", overhead_epochs=2,
                    cpus=1, data_repeats=1,
                    search_data=DataConfig(num_clips=100, frames=4, height=16, width=16, noise=0.2),
                    search_space="tiny", num_samples=2, max_epochs=2, seeds=(0,),
                    noop_trials=0, pack_trials=4, pack_epochs=2, tiny_data=tiny)
    else:
        plan = Plan(smoke=False, overhead_data=DataConfig(), overhead_space="default",
                    overhead_epochs=4, cpus=int(SearchConfig().cpus_per_trial), data_repeats=3,
                    # Reduced for time: 500 clips of 6x16x16, 150 of them val (0.67 points each).
                    search_data=DataConfig(num_clips=500, frames=6, height=16, width=16,
                                           val_fraction=0.3),
                    search_space="default", num_samples=12, max_epochs=SearchConfig().max_epochs,
                    seeds=(0, 1, 2), noop_trials=6, pack_trials=8, pack_epochs=3)
    overrides: dict[str, Any] = {}
    if seeds is not None:
        overrides["seeds"] = tuple(range(seeds))
    if num_samples is not None:
        overrides["num_samples"] = num_samples
    if cpus_per_trial is not None:
        overrides["cpus"] = cpus_per_trial
    if data_repeats is not None:
        overrides["data_repeats"] = data_repeats
    return replace(plan, **overrides)


def search_cfg(root: str, name: str, **kwargs: Any) -> SearchConfig:
    """One search of the benchmark, its results under root/name."""
    return SearchConfig(results_dir=root, name=name, **kwargs)
