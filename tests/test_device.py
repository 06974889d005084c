"""The CUDA device a trial trains on and the memory cap it sets, checked on any machine.

torch.cuda.set_per_process_memory_fraction resolves its device with
_get_device_index(device, optional=False), which rejects an index-less torch.device("cuda").
These tests pass exactly what the cap would pass through that same resolver.
"""

from __future__ import annotations

import pytest
import torch
from torch.cuda._utils import _get_device_index

from vidtune.trainable.core.failures import is_deterministic, one_line
from vidtune.trainable.core.loop import pick_device
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import Grant, limit_resources, memory_cap, memory_error, run_trial


def test_torch_rejects_an_index_less_cuda_device():
    # The failure the cap used to hit on every real GPU.
    with pytest.raises(ValueError, match="specified index"):
        _get_device_index(torch.device("cuda"), optional=False)


def test_pick_device_names_the_current_cuda_index(monkeypatch):
    # No GPU here: stand in for the one CUDA query pick_device makes (Ray's visible GPU 3).
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    device = pick_device("cuda")
    assert device == torch.device("cuda", 3)
    assert _get_device_index(device, optional=False) == 3
    assert pick_device("cuda:1") == torch.device("cuda", 1)   # an explicit index is kept
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("index", [0, 2])
def test_memory_cap_passes_an_index_torch_accepts(index):
    cap = memory_cap(torch.device("cuda", index), 0.25)
    assert cap == (index, 0.25)
    assert _get_device_index(cap[0], optional=False) == index


def test_memory_cap_only_for_a_fraction_of_a_gpu():
    assert memory_cap(torch.device("cpu"), 0.25) is None
    assert memory_cap(torch.device("cuda", 0), 1.0) is None      # a whole GPU: no cap
    assert memory_cap(torch.device("cuda", 0), 0.0) is None
    with pytest.raises(ValueError, match="device cuda has no index"):
        memory_cap(torch.device("cuda"), 0.5)


def test_cpu_trial_reports_what_it_was_given(tiny_data):
    setup = SearchConfig(space="tiny", data=tiny_data, max_epochs=1, grace_period=1, cpus_per_trial=1)
    threads = torch.get_num_threads()
    reports = []
    try:
        device, grant = limit_resources(setup)
        assert device == torch.device("cpu") and grant == Grant("cpu", 1)
        run_trial({"conv_blocks": 1, "conv_base": 4, "lstm_hidden": 8, "lr": 3e-3}, setup,
                  lambda metrics, state: reports.append(metrics), device=device, grant=grant)
    finally:
        torch.set_num_threads(threads)
    assert len(reports) == 1
    assert {k: reports[0][k] for k in ("device", "cpu_threads", "gpu_share", "gpu_cap_mb")} == \
        {"device": "cpu", "cpu_threads": 1, "gpu_share": 0.0, "gpu_cap_mb": 0.0}


def test_out_of_memory_names_the_trials_cap_and_stays_retryable():
    torch_says = ("CUDA out of memory. Tried to allocate 24.50 GiB. GPU 0 has a total capacity of "
                  "79.19 GiB of which 60.12 GiB is free.\nSee documentation for Memory Management")
    capped = Grant("cuda:0", 2, 0.25, "NVIDIA H100 80GB HBM3", 81_091.6, 20_272.9)
    err = memory_error(torch.OutOfMemoryError(torch_says), capped)
    assert isinstance(err, torch.OutOfMemoryError) and not is_deterministic(err)
    line = one_line(err)
    assert line.startswith("TrialMemoryError: trial ran out of CUDA memory, capped at 19.8 GiB "
                           "(0.25 of the 79.2 GiB of NVIDIA H100 80GB HBM3, --gpus-per-trial 0.25): "
                           "CUDA out of memory. Tried to allocate 24.50 GiB."), line
    assert "a larger --gpus-per-trial" in line and "See documentation" not in line
    whole = memory_error(torch.OutOfMemoryError(torch_says), Grant("cuda:0", 2, 1.0, "H100", 81_091.6))
    assert "on a whole H100 (79.2 GiB, no cap)" in str(whole)
    assert "on its GPU" in str(memory_error(torch.OutOfMemoryError(""), None))
