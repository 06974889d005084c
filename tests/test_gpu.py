"""CUDA end to end: what only a real GPU can show. `make gpu-check` runs these; without a CUDA
device they are skipped (conftest.py), and the CPU suite covers the same code on the CPU.

- the data path: uint8 copied and converted on the GPU equals the CPU's floats, and an epoch
  waits for the GPU a fixed number of times, not once per batch;
- bf16 autocast against fp32 on the same batch, within stated tolerances;
- a checkpoint written on CUDA resumes on the CPU, and the reverse;
- the memory cap of packed trials: a 0.25-GPU trial that needs more fails alone, naming its
  cap, while its neighbours finish;
- --gpus-per-trial auto's probe on the real card;
- a search, retrain, evaluate, export and predict on CUDA;
- without Ray (the device machine has none; the two tests above that need Ray or PyAV skip
  themselves there): a trial over its cap fails at once, not retried; a CPU trial leaves the
  GPU alone; CUDA's generator travels with a checkpoint; model.pt2 runs on CUDA; the side
  stream's memory stays flat over epochs.

Sized to take about two minutes together on an H100 (tiny clips except where a test needs
the benchmark's 16x112x112): see benchmarks/lib/gpu_check.py for the budget.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from vidtune.data import DataConfig, DeviceLoader, make_loaders, to_float
from vidtune.trainable.core import ModelConfig, TrainConfig, build_model, evaluate, fit
from vidtune.trainable.core.checkpoint import load_state, save_state
from vidtune.trainable.core.loop import make_optimizer, train_one_epoch

pytestmark = pytest.mark.gpu

TINY = ModelConfig(conv_widths=(8, 16), lstm_hidden=32, spatial_pool=2)
CPU = torch.device("cpu")
MB = 1024.0**2


@pytest.fixture(scope="module")
def cuda() -> torch.device:
    from vidtune.trainable.core.loop import pick_device

    return pick_device("cuda")


def test_data_path_matches_the_cpu_and_waits_once_per_pass(tiny_data, cuda):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    loaders.train.set_epoch(2)
    on_cpu, on_gpu = list(loaders.train), list(DeviceLoader(loaders.train, cuda))
    assert len(on_gpu) == len(on_cpu) == 10
    for (x, y), (gx, gy) in zip(on_cpu, on_gpu, strict=True):
        assert gx.device == cuda and gx.dtype == torch.float32 and gx.shape == x.shape
        torch.testing.assert_close(gx.cpu(), x, rtol=0, atol=1e-6)   # same floats, made on the GPU
        assert torch.equal(gy.cpu(), y)

    model = build_model(TINY, seed=0).to(cuda)
    optimizer = make_optimizer(model, TrainConfig())
    train_one_epoch(model, loaders.train, optimizer, cuda, 1.0)   # warm-up: cuDNN's choices, the allocator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")   # every host wait for the GPU becomes a warning
        try:
            train_one_epoch(model, loaders.train, optimizer, cuda, 1.0)
            evaluate(model, loaders.val, cuda, 10)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    waits = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    # 10 train + 3 val batches; the host reads the train loss once, the val loss and the
    # confusion matrix once each.
    assert len(waits) <= 3, waits


def test_bf16_autocast_matches_fp32_on_the_same_batch(cache_dir, cuda):
    """Tolerances: bf16 keeps 8 significant bits (a relative rounding of 0.4 % per value);
    through three conv blocks and 16 LSTM steps that is about 1 % of an activation. On a
    fresh model's logits (|logit| < 1) that is below 0.01, the loss (about ln 10 = 2.3) moves
    by less than 0.01, and the gradient keeps its direction. The bounds below leave 3-5x
    headroom; a wrong dtype, an overflow or a missing cast would break them."""
    data = DataConfig(num_clips=40, frames=16, height=112, width=112, noise=0.6, cache_dir=cache_dir)
    clips, labels = next(iter(make_loaders(data, batch_size=8, progress=False).train))
    clips, labels = clips.to(cuda), labels.to(cuda)          # (8, 16, 3, 112, 112)
    model = build_model(ModelConfig(), seed=0).to(cuda).train()
    params = list(model.parameters())

    def run(autocast: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(clips).float()                    # (8, 10)
            loss = nn.functional.cross_entropy(logits, labels)
        grads = torch.autograd.grad(loss, params)
        return logits.detach(), loss.detach(), torch.cat([g.flatten().float() for g in grads])

    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False   # true fp32
    try:
        logits32, loss32, grad32 = run(autocast=False)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    logits16, loss16, grad16 = run(autocast=True)
    logit_diff = (logits16 - logits32).abs().max().item()
    loss_diff = abs(loss16.item() - loss32.item())
    cosine = nn.functional.cosine_similarity(grad16, grad32, dim=0).item()
    measured = f"logits {logit_diff:.4f}, loss {loss_diff:.4f}, gradient cosine {cosine:.5f}"
    assert logit_diff <= 0.05, measured
    assert loss_diff <= 0.02, measured
    assert cosine >= 0.99, measured
    assert math.isfinite(loss16.item()), measured


def test_a_checkpoint_moves_between_cuda_and_the_cpu(tiny_data, cuda, tmp_path):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    for first, second in ((cuda, CPU), (CPU, cuda)):
        saved: dict = {}
        cfg = TrainConfig(lr=3e-3, epochs=1, seed=1)
        fit(build_model(TINY, seed=1), loaders.train, loaders.val, cfg, 10, device=first,
            on_epoch=lambda metrics, state_fn, saved=saved: saved.update(state_fn()))
        folder = tmp_path / f"{first.type}-to-{second.type}"
        save_state(folder, saved, {"epoch": 1})
        state = load_state(folder)                      # always onto the CPU (map_location)
        # epochs=1 is done already: the model is only loaded, on the other device.
        loaded = build_model(TINY, seed=99)
        fit(loaded, loaders.train, loaders.val, cfg, 10, device=second, resume=state)
        for name, value in loaded.state_dict().items():
            assert value.device.type == second.type, name
            assert torch.equal(value.cpu(), state["model"][name].cpu()), name
        # And it trains on: the optimizer's state follows the parameters to the other device.
        resumed = fit(build_model(TINY, seed=99), loaders.train, loaders.val,
                      TrainConfig(lr=3e-3, epochs=2, seed=1), 10, device=second, resume=state)
        assert len(resumed.history) == 2 and resumed.history[0] == saved["history"][0]
        assert math.isfinite(resumed.history[1]["train_loss"])


def test_a_trial_over_its_memory_cap_fails_alone_naming_the_cap(cache_dir, tmp_path):
    """Four trials at 0.25 GPU on the real card. Three train a small model; the fourth has one
    conv block so wide that its first activation alone, bf16 (B*T, wide, H, W), is twice its
    cap. It must fail with a message naming that cap, and only it."""
    pytest.importorskip("ray", reason="needs Ray (the Ray-free cap test below runs without)")
    from ray import tune

    from vidtune.trainable.core.packing import CONTEXT_MB
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.driver import run_repeats, shutdown
    from vidtune.trainable.tune.experiment import load_experiment

    batch, frames, side = 16, 8, 64
    cap_mb = 0.25 * torch.cuda.get_device_properties(0).total_memory / MB
    per_channel_mb = batch * frames * side * side * 2 / MB
    wide = math.ceil(2 * cap_mb / per_channel_mb)
    data = DataConfig(num_clips=80, frames=frames, height=side, width=side, noise=0.2, cache_dir=cache_dir)
    cfg = SearchConfig(space="default", num_samples=1, max_epochs=1, batch_size=batch,
                       gpus_per_trial=0.25, cpus_per_trial=1, num_cpus=4, num_gpus=1,
                       results_dir=str(tmp_path), name="cap", data=data)
    params = {"conv_blocks": 1, "lstm_hidden": 16, "lr": 1e-3,
              "conv_base": tune.grid_search([8, 8, 8, wide])}
    shutdown()
    try:
        outcome = run_repeats(cfg, params)
    finally:
        shutdown()
    trials = load_experiment(outcome.experiment_path).trials
    assert len(trials) == 4
    over = trials[trials["conv_base"] == wide]
    rest = trials[trials["conv_base"] != wide]
    assert list(over["status"]) == ["errored"], trials[["conv_base", "status", "error"]]
    error = over["error"].iloc[0]   # Ray's traceback names the class with its module
    assert ("TrialMemoryError: trial ran out of CUDA memory, capped at "
            f"{(cap_mb - CONTEXT_MB) / 1024:.1f} GiB (0.25 of the") in error, error
    assert list(rest["status"]) == ["completed"] * 3, rest[["status", "error"]]
    assert all(0 < peak < cap for peak, cap in zip(rest["gpu_peak_mb"], rest["gpu_cap_mb"], strict=True))
    assert rest["gpu_cap_mb"].iloc[0] == pytest.approx(cap_mb - CONTEXT_MB, abs=0.1)   # less its context


def test_auto_packing_probes_the_real_card(tiny_data):
    from vidtune.trainable.core.packing import (
        per_gpu,
        probe_memory,
        resolve_gpus_per_trial,
        share_of,
    )
    from vidtune.trainable.core.search_config import GPUS_AUTO, SearchConfig

    small = probe_memory(SearchConfig(space="tiny", data=tiny_data))
    big = probe_memory(SearchConfig(space="default", data=DataConfig(frames=16, height=112, width=112)))
    assert 0 < small.allocated_mb <= small.peak_mb < big.peak_mb < big.total_mb
    assert big.params == {"conv_blocks": 3, "conv_base": 48, "lstm_hidden": 384, "lr": 3e-2}
    cfg, note = resolve_gpus_per_trial(SearchConfig(space="tiny", data=tiny_data, gpus_per_trial=GPUS_AUTO))
    k = per_gpu(small.peak_mb, small.total_mb)
    assert cfg.gpus_per_trial == share_of(k) and f"({k} trials per GPU)" in note
    assert small.gpu_name in note


def test_search_retrain_evaluate_export_and_predict_on_cuda(cache_dir, cuda, tmp_path):
    pytest.importorskip("ray", reason="needs Ray (a real search)")
    pytest.importorskip("av", reason="needs PyAV (a real video to predict)")
    from _helpers import encode_video

    from vidtune.trainable.best.artifact import export_program, load_artifact
    from vidtune.trainable.best.predict import evaluate_model, predict_videos
    from vidtune.trainable.best.retrain import retrain_best
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.driver import run_search, shutdown
    from vidtune.trainable.tune.experiment import load_experiment

    data = DataConfig(num_clips=100, frames=4, height=16, width=16, noise=0.2, cache_dir=cache_dir)
    cfg = SearchConfig(space="tiny", num_samples=2, max_epochs=2, scheduler="none", grace_period=2,
                       gpus_per_trial=0.5, cpus_per_trial=1, num_cpus=2, num_gpus=1,
                       results_dir=str(tmp_path), name="s", data=data)
    shutdown()
    try:
        outcome = run_search(cfg)
    finally:
        shutdown()
    trials = load_experiment(outcome.experiment_path).trials
    assert outcome.num_errors == 0 and list(trials["status"]) == ["completed"] * 2
    assert all(str(d).startswith("cuda:") for d in trials["device"])
    assert all(0 < peak < cap for peak, cap in zip(trials["gpu_peak_mb"], trials["gpu_cap_mb"], strict=True))

    retrained = retrain_best(outcome.experiment_path)   # trains on this process's GPU
    folder = Path(retrained.out)
    assert (folder / "weights.pt").is_file() and (folder / "model.pt2").is_file()
    evaluation = evaluate_model(folder)                 # on CUDA (pick_device)
    assert abs(evaluation.result.accuracy - retrained.metrics["val_acc"]) <= 0.1

    model, config = load_artifact(folder)
    program = export_program(model, data.frames, data.height, data.width, atol=1e-3, device=cuda)
    clips = to_float(torch.randint(0, 256, (3, data.frames, data.height, data.width, 3),
                                   dtype=torch.uint8, device=cuda))    # (3, T, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(clips), model.to(cuda)(clips), atol=1e-3, rtol=1e-3)

    video = tmp_path / "clip.avi"
    encode_video(video, frames=8)
    (on_gpu,), (on_cpu,) = predict_videos(folder, [video], device=cuda), predict_videos(folder, [video])
    assert on_gpu.error is None and on_gpu.top[0][0] == on_cpu.top[0][0]
    assert on_gpu.top[0][1] == pytest.approx(on_cpu.top[0][1], abs=0.01)


def test_a_trial_over_its_cap_fails_at_once_without_ray(cache_dir, cuda):
    """limit_resources and run_trial in this process, as a Ray worker runs them: a 0.25-GPU
    trial whose first activation is twice its cap raises a TrialMemoryError naming the cap,
    marked over its cap, so the retry policy does not retry it."""
    from vidtune.trainable.core.failures import is_deterministic
    from vidtune.trainable.core.packing import CONTEXT_MB
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.core.trial import TrialMemoryError, limit_resources, run_trial

    batch, frames, side = 16, 8, 64
    total_mb = torch.cuda.get_device_properties(cuda).total_memory / MB
    cap_mb = 0.25 * total_mb - CONTEXT_MB
    wide = math.ceil(2 * cap_mb / (batch * frames * side * side * 2 / MB))
    data = DataConfig(num_clips=80, frames=frames, height=side, width=side, noise=0.2, cache_dir=cache_dir)
    make_loaders(data, batch_size=batch, progress=False)     # the cache, as the driver builds it
    cfg = SearchConfig(space="default", max_epochs=1, grace_period=1, batch_size=batch,
                       gpus_per_trial=0.25, cpus_per_trial=1, data=data)
    threads = torch.get_num_threads()
    try:
        device, grant = limit_resources(cfg)
        assert grant.gpu_cap_mb == pytest.approx(cap_mb, abs=0.1) and grant.gpu_uuid.startswith("GPU-")
        with pytest.raises(TrialMemoryError, match="capped at") as info:
            run_trial({"conv_blocks": 1, "conv_base": wide, "lstm_hidden": 16, "lr": 1e-3}, cfg,
                      lambda metrics, state: None, device=device, grant=grant)
        assert info.value.over_cap and is_deterministic(info.value), str(info.value)
    finally:
        torch.set_num_threads(threads)
        torch.cuda.set_per_process_memory_fraction(1.0, cuda.index)   # the rest of this process
        torch.cuda.empty_cache()


def test_a_cpu_trial_leaves_the_gpu_alone(tiny_data):
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.core.trial import limit_resources, run_trial

    cfg = SearchConfig(space="tiny", data=tiny_data, max_epochs=1, grace_period=1, cpus_per_trial=1)
    threads, reports = torch.get_num_threads(), []
    try:
        device, grant = limit_resources(cfg)    # gpus_per_trial 0, where torch sees a GPU
        run_trial({"conv_blocks": 1, "conv_base": 4, "lstm_hidden": 8, "lr": 3e-3}, cfg,
                  lambda metrics, state: reports.append(metrics), device=device, grant=grant)
    finally:
        torch.set_num_threads(threads)
    assert device == CPU and [r["device"] for r in reports] == ["cpu"]
    assert reports[0]["gpu_peak_mb"] == 0.0 and reports[0]["gpu_cap_mb"] == 0.0


def test_cuda_rng_travels_with_the_checkpoint(tiny_data, cuda):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    cfg = TrainConfig(lr=3e-3, epochs=1, seed=1)
    saved: dict = {}
    fit(build_model(TINY, seed=1), loaders.train, loaders.val, cfg, 10, device=cuda,
        on_epoch=lambda metrics, state_fn: saved.update(state_fn()))
    assert "cuda_rng" in saved
    torch.cuda.manual_seed(12345)                      # another stream, as in a fresh worker
    fit(build_model(TINY, seed=1), loaders.train, loaders.val, cfg, 10, device=cuda, resume=saved)
    assert torch.equal(torch.cuda.get_rng_state(cuda), saved["cuda_rng"])


def test_the_exported_program_runs_on_cuda(cuda, tmp_path):
    from vidtune.trainable.best.artifact import EXPORTED, export_program, load_exported

    model = build_model(TINY, seed=0)
    torch.export.save(export_program(model, 4, 16, 16), tmp_path / EXPORTED)   # traced on the CPU
    program = load_exported(tmp_path, cuda)
    clips = torch.rand(3, 4, 3, 16, 16, device=cuda)                            # (3, T, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(program(clips), model.to(cuda).eval()(clips), atol=1e-3, rtol=1e-3)


def test_the_side_streams_memory_stays_flat_over_epochs(tiny_data, cuda):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    loader = DeviceLoader(loaders.train, cuda)
    reserved = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        for clips, _ in loader:
            clips.sum()
        torch.cuda.synchronize(cuda)
        reserved.append(torch.cuda.memory_reserved(cuda))
    assert reserved[-1] <= reserved[1], reserved
    assert loader.data_wait_s > 0
