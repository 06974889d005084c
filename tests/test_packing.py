"""--gpus-per-trial auto: its rules in milliseconds, and its refusal on a machine without CUDA.
(The probe itself runs on a GPU: tests/test_gpu.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from vidtune.trainable.core.packing import (
    CONTEXT_MB,
    MARGIN,
    largest_params,
    per_gpu,
    resolve_gpus_per_trial,
    share_of,
)
from vidtune.trainable.core.search_config import GPUS_AUTO, SearchConfig, parse_gpus

H100_MB = 81_559.0   # torch's total_memory of an H100 80GB HBM3, in MiB


def test_largest_params_take_every_parameter_at_its_top():
    assert largest_params("default") == {"conv_blocks": 3, "conv_base": 48, "lstm_hidden": 384,
                                         "lr": 3e-2}
    wide = largest_params("wide")
    assert (wide["batch_size"], wide["lstm_layers"], wide["conv_base"]) == (64, 2, 48)
    assert largest_params("tiny") == {"conv_blocks": 2, "conv_base": 8, "lstm_hidden": 32, "lr": 3e-2}


@pytest.mark.parametrize("peak_mb,k", [
    (1_000.0, 8),      # needs 1762 MiB: 46 would fit, the packing stops at 8
    (8_000.0, 7),      # 10512 MiB each: 7.76
    (20_000.0, 3),     # 25512 MiB each: 3.2
    (40_000.0, 1),     # 50512 MiB: one
    (70_000.0, 0),     # 88012 MiB: not even one
])
def test_per_gpu_is_the_most_that_fit_with_margin_and_context(peak_mb, k):
    assert per_gpu(peak_mb, H100_MB) == k
    if 0 < k < 8:   # and one more would not
        assert (k + 1) * (peak_mb * (1 + MARGIN) + CONTEXT_MB) > H100_MB >= k * (peak_mb * (1 + MARGIN) + CONTEXT_MB)


def test_per_gpu_fits_exactly_at_the_boundary():
    need = 4 * (10_000 * (1 + MARGIN) + CONTEXT_MB)
    assert per_gpu(10_000.0, need) == 4 and per_gpu(10_000.0, need - 1) == 3
    with pytest.raises(ValueError, match="peak_mb"):
        per_gpu(0.0, H100_MB)


def test_shares_add_up_to_at_most_one_gpu_in_rays_precision():
    for k in range(1, 9):
        share = share_of(k)
        assert share == round(share, 4) and k * share <= 1 and (k + 1) * share > 1
    assert [share_of(k) for k in (1, 2, 3, 4, 6, 8)] == [1.0, 0.5, 0.3333, 0.25, 0.1666, 0.125]


def test_auto_is_a_flag_value_and_a_config_value():
    assert math.isnan(parse_gpus("auto")) and math.isnan(parse_gpus(" AUTO "))
    assert parse_gpus("0.25") == 0.25 and parse_gpus("2") == 2.0
    for bad in ("nan", "inf", "some"):
        with pytest.raises(ValueError, match=f"gpus per trial '{bad}' is not understood"):
            parse_gpus(bad)
    assert SearchConfig(gpus_per_trial=GPUS_AUTO).gpus_auto
    assert not SearchConfig(gpus_per_trial=0.5).gpus_auto
    with pytest.raises(ValueError, match=r"gpus_per_trial is -1.0, but must lie in \[0, 1\]"):
        SearchConfig(gpus_per_trial=-1.0)


def test_a_number_is_left_as_it_is():
    cfg = SearchConfig(gpus_per_trial=0.25)
    assert resolve_gpus_per_trial(cfg) == (cfg, "")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: auto measures it")
def test_auto_without_cuda_is_a_one_line_error_naming_the_fix():
    with pytest.raises(ValueError) as err:
        resolve_gpus_per_trial(SearchConfig(gpus_per_trial=GPUS_AUTO))
    message = str(err.value)
    assert "\n" not in message
    assert "torch sees no CUDA device here" in message and "--gpus-per-trial 0.25" in message
