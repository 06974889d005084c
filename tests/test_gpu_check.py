"""`make gpu-check` on a machine without a GPU: the script's plan, its imports and its packed
processes with Ray and PyAV absent (--cpu), the one-line failure without CUDA, a failing CUDA
test turning the run into a failure, the fold, and its figures and rules on hand-made reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.lib.gpu_check import (
    GpuCheck,
    GpuPlan,
    estimate,
    fold,
    preflight_error,
    read_junit,
    render,
    run_gpu_check,
    train_gflop_per_clip,
    write_outputs,
)
from benchmarks.lib.gpu_util import UtilSampler, mean_between, parse_smi_line
from benchmarks.lib.gpus import packed_figures
from benchmarks.lib.packed import predict_wall, start_up_s
from vidtune.trainable.core.config import ModelConfig

ROOT = Path(__file__).resolve().parents[1]

# Imported at the start of every process (sitecustomize), the script's children included: the
# device machine has neither Ray nor PyAV.
NO_RAY = """import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "av"):
            raise ModuleNotFoundError(f"No module named {name!r} (absent, as on the device)")
sys.meta_path.insert(0, _Absent())
"""


def section(text: str) -> str:
    start, end = "<!-- gpu_check:start -->", "<!-- gpu_check:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, text
    return text[text.index(start) + len(start) : text.index(end)]


def test_cpu_mode_packs_plain_processes_with_ray_and_av_absent(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_RAY)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu", "--out", str(out),
                           "--parts", "dtypes,packed trials", "--packings", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (out / "gpu_check.log").read_text()
    assert f"vidtune from {ROOT / '.gpu_tree' / 'vidtune'}" in log      # the shim, not an install
    assert "not importable here: ray, av" in log
    found = json.loads((out / "gpu_check.json").read_text())
    assert found["ok"] and found["cpu_mode"] and found["dtypes"]["lstm"] == "float32"
    runs = {r["per_gpu"]: r for r in found["packed"]}
    assert sorted(runs) == [2]
    for k, r in runs.items():   # k processes, each through run_trial, none errored or stopped
        assert (r["trials"], r["errors"], r["stopped"], r["device"]) == (k, 0, 0, "cpu"), r
        assert len(r["alone_clips_per_s"]) == k and r["clips_per_s"] > 0
    assert (out / "gpu-packed.png").stat().st_size > 0
    body = (out / "gpu_check.md").read_text()
    assert "CPU mode (--cpu)" in body and "**all checks passed**" in body
    assert "| 2 | 0 |" in body and done.stdout.startswith("## GPU check")
    with pytest.raises(ValueError, match="is a --cpu run: nothing in it was measured on a GPU"):
        fold(out, tmp_path / "benchmarks.md")
    assert not (tmp_path / "benchmarks.md").exists()


def test_without_cuda_or_cpu_it_fails_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu-check: torch ") and "pass --cpu" in last, done.stderr
    assert not (tmp_path / "gpu_check.md").exists()


def test_preflight_names_what_nvidia_smi_lists():
    listed = ["GPU 0: NVIDIA H200 (UUID: GPU-8f3c0a52-6b1e-4c2d-9e7f-0123456789ab)"]
    error = preflight_error(cuda=False, smi_gpus=listed, cpu_mode=False)
    assert error is not None and error.startswith(f"nvidia-smi lists 1 GPU(s) ({listed[0]}), but torch ")
    assert "cannot use them" in error and "--cpu" in error
    assert preflight_error(cuda=False, smi_gpus=listed, cpu_mode=True) is None
    assert preflight_error(cuda=True, smi_gpus=listed, cpu_mode=False) is None


def test_a_failing_cuda_test_fails_the_check(tmp_path):
    tests = tmp_path / "suite" / "tests" / "test_broken.py"
    tests.parent.mkdir(parents=True)
    tests.write_text("import pytest\n\n\n@pytest.mark.gpu\ndef test_broken():\n"
                     "    assert 1 + 1 == 3, 'arithmetic'\n\n\n@pytest.mark.gpu\ndef test_fine():\n"
                     "    pass\n")
    check = run_gpu_check(tmp_path / "out", tests, cpu_mode=True, parts=("CUDA tests",))
    assert not check.ok
    assert check.failures == ["CUDA tests failed: test_broken"]
    assert [(t.name, t.outcome) for t in check.tests] == [("test_broken", "failed"), ("test_fine", "passed")]
    body = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "**FAILED**: CUDA tests failed: test_broken" in body
    assert "| test_broken | failed: AssertionError: arithmetic" in body


def test_fold_writes_a_device_run_into_part_6(tmp_path):
    trials = pd.DataFrame({"gpu_peak_mb": [900.0], "gpu_cap_mb": [35_000.0]})
    one = packed_figures(1, 1.0, _reports([0.0], [1.0], 0.0), 100, [], "NVML (pynvml)", 0, trials, 9.0)
    check = GpuCheck(device="NVIDIA H200", cpu_mode=False, plan=GpuPlan(), estimate={}, packed=[one],
                     gpu={"name": "NVIDIA H200", "UUID": "GPU-1"})
    out = tmp_path / "out"
    write_outputs(out, check)
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text("# Benchmarks\n\n<!-- gpu_check:start -->\nold\n<!-- gpu_check:end -->\nkept\n")
    assert fold(out, docs).startswith(f"folded {out / 'gpu_check.json'} (NVIDIA H200)")
    body = section(docs.read_text())
    assert "device NVIDIA H200" in body and "- GPU: name NVIDIA H200; UUID GPU-1." in body
    assert "old" not in body and docs.read_text().endswith("kept\n")
    assert (docs.parent / "gpu-packed.png").read_bytes() == (out / "gpu-packed.png").read_bytes()
    with pytest.raises(ValueError, match="holds no gpu_check.json"):
        fold(tmp_path, docs)


def test_the_next_packing_pays_the_start_up_once():
    # 2 trials took 60 s, 20 of them starting up: 8 take 20 + 40 * 4 = 180 s, not 60 * 4.
    assert predict_wall(8, 2, 60.0, 20.0) == pytest.approx(180.0)
    assert predict_wall(4, 4, 30.0, 50.0) == pytest.approx(50.0)   # start-up above the wall: no negative work
    with pytest.raises(ValueError, match="must be >= 1"):
        predict_wall(0, 1, 1.0, 0.0)
    runs = _reports([100.0, 103.0], [10.0, 10.0], 0.0)   # first batches at 100 and 103
    assert start_up_s(runs, launched_at=95.0) == pytest.approx(8.0)


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
                     packed=[one, four], dtypes={"lstm": "float16"})
    body = render(check)   # 4 x 80 clips/s against 100: 3.2x; busy 82 %
    assert "| aggregate training clips/s, 4 trials per GPU / 1 alone | 3.20x | >= 3x | **PASS** |" in body
    assert "| GPU busy during the 4-per-GPU run | 82 % | >= 80 % | **PASS** |" in body
    assert "| the LSTM's dtype under the loop's autocast | float16 | not float16 (no GradScaler) | **FAIL** |" in body
    slower = packed_figures(4, 0.25, _reports([0.0] * 4, [1.5] * 4, 0.0), 100, [(3.5, 60.0)],
                            "nvidia-smi", 0, trials, 20.0)
    body = render(GpuCheck("NVIDIA H100 80GB HBM3", False, GpuPlan(), {}, packed=[one, slower]))
    assert "| 2.67x | >= 3x | **FAIL** |" in body and "| 60 % | >= 80 % | **FAIL** |" in body
    assert "| 4 | 0.25 | 267 | 67, 67, 67, 67 | 60 % (1 samples) | 900 MiB | - | none | - |" in body


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
