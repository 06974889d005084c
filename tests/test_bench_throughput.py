"""The throughput benchmark: its smoke run writes every part's figures into its
section, parts measured in separate runs are merged, and the FLOP count is the model's."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from benchmarks import bench_throughput
from benchmarks.lib.throughput import (
    SEED_CLASS,
    Plan,
    class_params,
    flops_per_clip,
    model_config,
)
from vidtune.search_spaces import SEED_DEFAULT


def test_the_flop_count_is_the_seed_models_by_hand():
    """Forward per clip: three 3x3 convs (3->32 at 32x32, 32->64 at 16x16, 64->128 at 8x8),
    2 FLOPs a multiply-add, for 8 frames; the LSTM's four gates over F = 128 x 4 x 4 inputs
    and H = 256; the head. Backward: twice the forward's matmuls, less the first conv's input
    gradient (the clips need none)."""
    plan = replace(Plan(), batch_size=2)
    f = flops_per_clip(model_config(SEED_DEFAULT, plan), plan)
    conv = sum(2 * h * h * c_out * c_in * 9 for h, c_in, c_out in ((32, 3, 32), (16, 32, 64), (8, 64, 128)))
    lstm = 2 * 4 * 256 * (2048 + 256)
    head = 2 * 256 * 10
    assert f["forward"] == 8 * (conv + lstm) + head
    first_conv_input_grad = 2 * 32 * 32 * 32 * 3 * 9 * 8
    assert f["backward"] == 2 * f["forward"] - first_conv_input_grad
    assert f["conv_share"] == pytest.approx(3 * 8 * conv / f["total"] - first_conv_input_grad / f["total"])
    assert set(class_params()) >= {SEED_CLASS} and len(class_params()) == 6


def test_bench_throughput_smoke_merges_its_parts(tmp_path, cache_dir):
    md, figures = tmp_path / "bench.md", tmp_path / "figures.json"
    md.write_text("# kept\n")
    bench_throughput.main(["--smoke", "--parts", "flops,peak", "--out", str(md), "--json", str(figures)])
    assert set(json.loads(figures.read_text())) >= {"flops", "peak"}
    text = bench_throughput.main(["--smoke", "--parts", "levers,classes,profile,accuracy",
                                  "--out", str(md), "--json", str(figures)])
    written = md.read_text()
    assert written.startswith("# kept") and text.strip() in written
    assert written.count("<!-- bench_throughput:start -->") == 1
    for heading in ("Training clips/s by config class", "The core's peak", "The levers",
                    "Where an epoch's time goes", "Accuracy: val acc after 1 epochs", "Smoke run"):
        assert heading in text, heading
    classes = [line for line in text.splitlines() if line.startswith("| ") and " blocks, base " in line]
    assert len(classes) == 6 and all("nan" not in line for line in classes), classes
    assert "| epoch |" in text and "inference_mode" in text
    with pytest.raises(SystemExit):
        bench_throughput.main(["--smoke", "--parts", "flop", "--out", str(md)])
