"""The CUDA device a trial trains on and the memory cap it sets, checked on any machine.

torch.cuda.set_per_process_memory_fraction resolves its device with
_get_device_index(device, optional=False), which rejects an index-less torch.device("cuda").
These tests pass exactly what the cap would pass through that same resolver.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.cuda._utils import _get_device_index

from vidtune.trainable.core.failures import is_deterministic, one_line
from vidtune.trainable.core.loop import pick_device
from vidtune.trainable.core.memory_cap import CONTEXT_MB, cap_fraction
from vidtune.trainable.core.packing import MAX_PER_GPU, share_of
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import (
    Grant,
    limit_resources,
    memory_cap,
    memory_error,
    oom_sizes,
    physical_gpu,
    run_trial,
)


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
    cap = memory_cap(torch.device("cuda", index), 0.25, 81_920.0)
    assert cap is not None and cap[0] == index
    assert _get_device_index(cap[0], optional=False) == index


def test_memory_cap_only_for_a_fraction_of_a_gpu():
    assert memory_cap(torch.device("cpu"), 0.25, 81_920.0) is None
    assert memory_cap(torch.device("cuda", 0), 1.0, 81_920.0) is None      # a whole GPU: no cap
    assert memory_cap(torch.device("cuda", 0), 0.0, 81_920.0) is None
    with pytest.raises(ValueError, match="device cuda has no index"):
        memory_cap(torch.device("cuda"), 0.5, 81_920.0)


@pytest.mark.parametrize("total_mb", [16_384.0, 81_559.0, 143_771.0])
def test_k_caps_and_k_contexts_fit_on_the_card(total_mb):
    # The rule: cap = (total/k - context)/total. Capped at total/k, the caps alone would fill
    # the card and the k contexts (outside torch's allocator) would come on top.
    for k in range(1, MAX_PER_GPU + 1):
        share = share_of(k)
        if share >= 1:
            assert memory_cap(torch.device("cuda", 0), share, total_mb) is None
            continue
        cap = cap_fraction(share, total_mb)
        assert cap == pytest.approx((total_mb / k - CONTEXT_MB) / total_mb, abs=1e-4)
        assert k * (cap * total_mb + CONTEXT_MB) <= total_mb
        assert memory_cap(torch.device("cuda", 1), share, total_mb) == (1, cap)
    with pytest.raises(ValueError, match="gpus_per_trial 0.02 gives a trial 328 MiB of this 16384 "
                                         "MiB GPU, of which its CUDA context takes about 512 MiB"):
        cap_fraction(0.02, 16_384.0)


def test_a_cpu_trial_stays_on_the_cpu_where_torch_sees_a_gpu(monkeypatch):
    # Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone for a 0-GPU actor: torch in a CPU trial on a
    # GPU node sees the GPUs. Stand in for that; any further CUDA call would fail the test.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def no_cuda(*args, **kwargs):
        raise AssertionError("a CPU trial made a CUDA call")

    for name in ("current_device", "get_device_properties", "set_per_process_memory_fraction"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    threads = torch.get_num_threads()
    try:
        device, grant = limit_resources(SearchConfig(gpus_per_trial=0, cpus_per_trial=1))
    finally:
        torch.set_num_threads(threads)
    assert device == torch.device("cpu") and grant == Grant("cpu", 1, 0.0)
    assert pick_device(gpus=0) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert pick_device() == torch.device("cuda", 0)   # not a trial: where torch sees CUDA


def test_the_physical_gpu_as_nvidia_smi_names_it():
    props = SimpleNamespace(uuid="8f3c0a52-6b1e-4c2d-9e7f-0123456789ab", pci_domain_id=0,
                            pci_bus_id=0x18, pci_device_id=0)
    assert physical_gpu(props) == ("GPU-8f3c0a52-6b1e-4c2d-9e7f-0123456789ab", "0000:18:00.0")
    assert physical_gpu(SimpleNamespace(uuid="GPU-1")) == ("GPU-1", "")   # an older torch: no pci_*


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


def test_out_of_memory_over_the_cap_is_not_retried_a_full_card_is():
    # Over its cap: the card still had what was asked for; the set fraction refused it.
    torch_says = ("CUDA out of memory. Tried to allocate 24.50 GiB. GPU 0 has a total capacity of "
                  "79.19 GiB of which 60.12 GiB is free. Including non-PyTorch memory, this process "
                  "has 19.00 GiB memory in use. 19.27 GiB allowed;\nSee documentation for Memory "
                  "Management")
    capped = Grant("cuda:0", 2, 0.25, "NVIDIA H100 80GB HBM3", 81_091.6, 19_760.9)
    err = memory_error(torch.OutOfMemoryError(torch_says), capped)
    assert isinstance(err, torch.OutOfMemoryError) and err.over_cap and is_deterministic(err)
    line = one_line(err)
    assert line.startswith("TrialMemoryError: trial ran out of CUDA memory, capped at 19.3 GiB "
                           "(0.25 of the 79.2 GiB of NVIDIA H100 80GB HBM3, --gpus-per-trial 0.25, "
                           "less its CUDA context): CUDA out of memory. Tried to allocate 24.50 GiB."), line
    assert "It hit its own cap, so a retry would too: not retried." in line
    assert "a larger --gpus-per-trial" in line and "See documentation" not in line
    # The card itself full (a neighbour's memory, another process): may pass on a retry.
    full = torch_says.replace("of which 60.12 GiB is free", "of which 310.00 MiB is free")
    err = memory_error(torch.OutOfMemoryError(full), capped)
    assert not err.over_cap and not is_deterministic(err)
    assert "The card itself was full" in str(err)
    assert oom_sizes(full) == pytest.approx((24.5 * 1024, 310.0))
    whole = memory_error(torch.OutOfMemoryError(torch_says), Grant("cuda:0", 2, 1.0, "H100", 81_091.6))
    assert "on a whole H100 (79.2 GiB, no cap)" in str(whole) and not is_deterministic(whole)
    assert "on its GPU" in str(memory_error(torch.OutOfMemoryError(""), None))
