"""`make gpu-check` on a machine without a GPU: the script's CPU mode end to end, a failing
CUDA test turning the run into a failure, and its figures and verdicts on hand-made reports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.lib.gpu_check import (
    GpuCheck,
    GpuPlan,
    estimate,
    read_junit,
    render,
    run_gpu_check,
    train_gflop_per_clip,
)
from benchmarks.lib.gpu_util import UtilSampler, mean_between, parse_smi_line
from benchmarks.lib.gpus import packed_figures
from vidtune.trainable.core.config import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
GPU_TESTS = ["test_data_path_matches_the_cpu_and_waits_once_per_pass",
             "test_bf16_autocast_matches_fp32_on_the_same_batch",
             "test_a_checkpoint_moves_between_cuda_and_the_cpu",
             "test_a_trial_over_its_memory_cap_fails_alone_naming_the_cap",
             "test_auto_packing_probes_the_real_card",
             "test_search_retrain_evaluate_export_and_predict_on_cuda"]


def section(text: str) -> str:
    start, end = "<!-- gpu_check:start -->", "<!-- gpu_check:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, text
    return text[text.index(start) + len(start) : text.index(end)]


def test_cpu_mode_prints_its_skips_and_exits_0(tmp_path):
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- bench_data:start -->\nkept\n<!-- bench_data:end -->\n")
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--cpu", "--out", str(md)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for part in ("auto probe", "data share", "packed searches"):
        assert f"skipped: {part}: no CUDA device" in done.stderr
    assert "6 skipped" in done.stderr   # pytest's own summary of the CUDA tests
    text = md.read_text()
    assert "kept" in text   # the other sections are left alone
    body = section(text)
    assert "CPU mode" in body and "device cpu" in body and "**all checks passed**" in body
    for name in GPU_TESTS:
        assert f"| {name} | skipped: needs a CUDA device" in body, name
    assert body.count("| skipped: no CUDA device |") == 3   # the three goals
    printed = done.stdout   # the section, as written (but for the time and load of the run line)
    assert printed.startswith("## GPU check") and f"written to {md}" in printed
    for line in body.strip().splitlines():
        assert line.startswith("- Run:") or line in printed, line


def test_a_failing_cuda_test_fails_the_check(tmp_path):
    tests = tmp_path / "suite" / "tests" / "test_broken.py"
    tests.parent.mkdir(parents=True)
    tests.write_text("import pytest\n\n\n@pytest.mark.gpu\ndef test_broken():\n"
                     "    assert 1 + 1 == 3, 'arithmetic'\n\n\n@pytest.mark.gpu\ndef test_fine():\n"
                     "    pass\n")
    md = tmp_path / "b.md"
    check = run_gpu_check(md, tests, cpu_mode=True)
    assert not check.ok
    assert check.failures == ["CUDA tests failed: test_broken"]
    assert [(t.name, t.outcome) for t in check.tests] == [("test_broken", "failed"), ("test_fine", "passed")]
    body = section(md.read_text())
    assert "**FAILED**: CUDA tests failed: test_broken" in body
    assert "| test_broken | failed: AssertionError: arithmetic" in body


def test_read_junit_outcomes(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite>'
                   '<testcase name="a" time="1.5"/>'
                   '<testcase name="b" time="0.2"><failure message="assert 0&#10;more">x</failure></testcase>'
                   '<testcase name="c" time="0"><skipped message="needs CUDA"/></testcase>'
                   '<testcase name="d" time="0"><error message="fixture broke"/></testcase>'
                   '</testsuite></testsuites>')
    assert [(t.name, t.outcome, t.seconds, t.message) for t in read_junit(xml)] == [
        ("a", "passed", 1.5, ""), ("b", "failed", 0.2, "assert 0"), ("c", "skipped", 0.0, "needs CUDA"),
        ("d", "error", 0.0, "fixture broke")]


def test_flops_of_one_training_clip():
    # One conv block of 2 channels on 4x4, one frame: 4*4*2*3*9 = 864 multiply-adds; an LSTM
    # of 3 on 2 inputs: 4*3*(2+3) = 60. Forward and backward: 2 * 3 * 924 FLOPs.
    tiny = ModelConfig(conv_widths=(2,), lstm_hidden=3, spatial_pool=1)
    assert train_gflop_per_clip(tiny, 1, 4, 4) == pytest.approx(6 * 924 / 1e9)
    assert train_gflop_per_clip(ModelConfig(), 16, 112, 112) == pytest.approx(12.365, abs=1e-3)
    parts = estimate(GpuPlan(), ModelConfig())
    assert sum(parts.values()) < GpuPlan().budget_s * 0.7   # the plan leaves room for a slow card


def _reports(starts: list[float], epoch_s: list[float], data_s: float) -> list[pd.DataFrame]:
    """Per trial, 3 epochs of epoch_s each from its start; data wait data_s per epoch."""
    return [pd.DataFrame({"epoch": [1, 2, 3], "epoch_time_s": [2 * s, s, s],
                          "started_at": [t] * 3, "reported_at": [t + 2 * s, t + 3 * s, t + 4 * s],
                          "data_s": [data_s] * 3, "val_acc": [0.1] * 3})
            for t, s in zip(starts, epoch_s, strict=True)]


def test_packed_figures_from_hand_made_reports():
    trials = pd.DataFrame({"gpu_peak_mb": [900.0, 1100.0], "gpu_cap_mb": [40_000.0] * 2})
    # Two trials started 1 s apart, 10 s per steady epoch, 960 train clips: 96 clips/s each.
    runs = _reports([100.0, 101.0], [10.0, 10.0], data_s=0.2)
    # Both are past epoch 1 from t=121 (the later one's first report) to t=140 (the earlier
    # one's last): only samples in there count.
    samples = [(110.0, 10.0), (125.0, 90.0), (130.0, 70.0), (141.0, 0.0)]
    r = packed_figures(2, 0.5, runs, 960, samples, "nvidia-smi", 0, trials, wall_s=50.0)
    assert r.clips_per_s == pytest.approx(192.0) and r.alone_clips_per_s == pytest.approx([96.0, 96.0])
    assert (r.util, r.util_samples) == (80.0, 2)
    assert r.data_share == pytest.approx(0.02) and r.overlap == 2
    assert r.peak_mb == [900.0, 1100.0] and r.cap_mb == 40_000.0


def test_goal_verdicts_of_a_run(tmp_path):
    trials = pd.DataFrame({"gpu_peak_mb": [900.0], "gpu_cap_mb": [0.0]})
    one = packed_figures(1, 1.0, _reports([0.0], [1.0], 0.0), 100, [], "NVML (pynvml)", 0, trials, 9.0)
    four = packed_figures(4, 0.25, _reports([0.0] * 4, [1.25] * 4, 0.0), 100,
                          [(2.6, 85.0), (3.0, 79.0)], "NVML (pynvml)", 0, trials, 20.0)
    check = GpuCheck(device="NVIDIA H100 80GB HBM3", cpu_mode=False, plan=GpuPlan(), estimate={},
                     packed=[one, four])
    body = render(check)   # 4 x 80 clips/s against 100: 3.2x; busy 82 %
    assert "| aggregate training clips/s, 4 trials per GPU / 1 alone | 3.20x | >= 3x | **PASS** |" in body
    assert "| GPU busy during the 4-per-GPU search | 82 % | >= 80 % | **PASS** |" in body
    slower = packed_figures(4, 0.25, _reports([0.0] * 4, [1.5] * 4, 0.0), 100, [(3.5, 60.0)],
                            "nvidia-smi", 0, trials, 20.0)
    body = render(GpuCheck("NVIDIA H100 80GB HBM3", False, GpuPlan(), {}, packed=[one, slower]))
    assert "| 2.67x | >= 3x | **FAIL** |" in body and "| 60 % | >= 80 % | **FAIL** |" in body
    assert "| 4 | 0.25 | 267 | 67, 67, 67, 67 | 60 % (1 samples) | 900 MiB | none |" in body


def test_gpu_utilization_samples():
    assert parse_smi_line("37\n") == 37.0 and parse_smi_line(" 100 %") == 100.0
    assert parse_smi_line("[N/A]") is None and parse_smi_line("") is None
    assert mean_between([(1.0, 10.0), (2.0, 30.0), (5.0, 99.0)], 1.0, 2.0) == (20.0, 2)
    assert mean_between([], 0.0, 1.0) == (None, 0)
    with UtilSampler(period_s=0.05) as sampler:   # on a machine with no GPU: says so, no samples
        pass
    if sampler.source.startswith("unavailable"):
        assert sampler.samples == []
    else:
        assert sampler.source in ("NVML (pynvml)", "nvidia-smi")
