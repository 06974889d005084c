"""The data path on the CPU: uint8 batches, the prefetching thread, and a loop that computes
exactly what it computed before the GPU path existed. (On CUDA: tests/test_gpu.py.)"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from vidtune.data import make_loaders, to_float
from vidtune.data.device import DeviceLoader, TimedLoader, _Prefetcher, on_device
from vidtune.trainable.core import ModelConfig, TrainConfig, build_model, evaluate, fit
from vidtune.trainable.core.loop import make_optimizer, train_one_epoch

TINY = ModelConfig(conv_widths=(4, 8), lstm_hidden=8, spatial_pool=2)
CPU = torch.device("cpu")


def test_uint8_batches_are_the_loaders_batches_before_conversion(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    loaders.train.set_epoch(3)
    floats, raw = list(loaders.train), list(loaders.train.uint8_batches())
    assert len(raw) == len(floats) == len(loaders.train) == 10
    for (x, y), (u, v) in zip(floats, raw, strict=True):
        assert u.dtype == torch.uint8 and u.shape == (len(y), 6, 16, 16, 3)   # (B, T, H, W, 3)
        assert torch.equal(to_float(u), x) and torch.equal(v, y)


def test_prefetcher_keeps_order_passes_errors_and_stops_when_closed():
    batches = [(torch.full((2,), i), torch.tensor([i])) for i in range(5)]
    assert [int(y) for _, y in _Prefetcher(iter(batches), depth=2)] == list(range(5))

    def failing():
        yield batches[0]
        raise OSError("the store went away")

    got = []
    with pytest.raises(OSError, match="the store went away"):
        for _, y in _Prefetcher(failing(), depth=2):
            got.append(int(y))
    assert got == [0]

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield torch.zeros(1), torch.tensor([i])
            i += 1

    prefetcher = _Prefetcher(endless(), depth=2)
    first = next(iter(prefetcher))
    assert int(first[1]) == 0
    prefetcher.close()
    assert not prefetcher._thread.is_alive()
    stopped_at = len(produced)
    time.sleep(0.3)
    assert len(produced) == stopped_at <= 5   # depth 2 ahead, then it stopped
    assert "vidtune-prefetch" not in [t.name for t in threading.enumerate()]


def test_on_the_cpu_the_loader_is_used_as_it_is(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    assert on_device(loaders.train, CPU) is loaders.train
    with pytest.raises(ValueError, match="device is cpu, but DeviceLoader needs a CUDA device"):
        DeviceLoader(loaders.train, CPU)
    with pytest.raises(ValueError, match="cuda:0"):
        DeviceLoader(loaders.train, torch.device("cuda"))


def test_timed_loader_adds_up_the_waits():
    def slow():
        for i in range(3):
            time.sleep(0.05)
            yield i

    timed = TimedLoader(slow())
    assert list(timed) == [0, 1, 2]
    assert 0.15 <= timed.seconds < 1.0


def test_timed_loader_takes_a_device_loaders_own_data_wait():
    # A DeviceLoader's next() also queues the upload, which blocks while the GPU's launch
    # queue is full: GPU time. Its own data_wait_s holds only the wait for the gathering thread.
    class Uploading:
        data_wait_s = 0.0

        def __iter__(self):
            for i in range(3):
                self.data_wait_s += 0.01    # what it waited for the data
                time.sleep(0.05)            # back-pressure inside next()
                yield i

    timed = TimedLoader(Uploading())
    assert list(timed) == [0, 1, 2]
    assert timed.seconds == pytest.approx(0.03)


def test_a_device_loader_makes_its_side_stream_once(tiny_data, monkeypatch):
    # No GPU here: count the streams made (the epochs' loop asks for one every pass).
    made = []
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: made.append(device) or object())
    loader = DeviceLoader(make_loaders(tiny_data, batch_size=16, progress=False).train,
                          torch.device("cuda", 0))
    streams = {id(loader.side_stream()) for _ in range(3)}
    assert len(streams) == 1 and made == [torch.device("cuda", 0)]


def _old_train_one_epoch(model, loader, optimizer, grad_clip):
    """train_one_epoch as it was before the GPU path: a Python float sum, read every batch."""
    model.train()
    total, count = 0.0, 0
    for clips, labels in loader:
        loss = nn.functional.cross_entropy(model(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += loss.item() * len(labels)
        count += len(labels)
    return total / max(count, 1)


def test_the_cpu_loop_computes_exactly_what_it_did(tiny_data):
    """The device-side sums (float64, same order) give the very floats the host sums gave, on
    the fp32 path (precision fp32; the model in its contiguous layout, as fit() leaves it with
    channels_last off)."""
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    cfg = TrainConfig(lr=3e-3, grad_clip=1.0)
    runs = []
    for one_epoch in (train_one_epoch, None):
        model = build_model(TINY, seed=4)
        optimizer = make_optimizer(model, cfg)
        loss = (one_epoch(model, loaders.train, optimizer, CPU, cfg.grad_clip, precision="fp32")
                if one_epoch
                else _old_train_one_epoch(model, loaders.train, optimizer, cfg.grad_clip))
        runs.append((loss, [p.detach().clone() for p in model.parameters()], model))
    (new_loss, new_params, model), (old_loss, old_params, _) = runs
    assert new_loss == old_loss                      # bit for bit, not approximately
    assert all(torch.equal(a, b) for a, b in zip(new_params, old_params, strict=True))

    ev = evaluate(model, loaders.val, CPU, 10, precision="fp32")
    model.eval()
    with torch.no_grad():
        total, confusion = 0.0, np.zeros((10, 10), dtype=int)
        for clips, labels in loaders.val:
            logits = model(clips).float()
            total += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            np.add.at(confusion, (labels.numpy(), logits.argmax(1).numpy()), 1)
    assert ev.loss == total / 40 and ev.confusion == confusion.tolist()
    assert ev.accuracy == np.trace(confusion) / 40


def test_fit_reports_its_data_wait_and_no_gpu_memory_on_the_cpu(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    result = fit(build_model(TINY, seed=0), loaders.train, loaders.val, TrainConfig(epochs=1), 10,
                 device=CPU)
    (metrics,) = result.history
    assert metrics["gpu_peak_mb"] == 0.0
    assert 0.0 < metrics["data_s"] < metrics["epoch_time_s"]


def test_fit_on_the_fp32_path_computes_exactly_what_the_old_loop_did(tiny_data):
    """fit() with precision fp32 and channels_last off: the old loop's loss, bit for bit."""
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    cfg = TrainConfig(lr=3e-3, grad_clip=1.0, epochs=1, seed=4, precision="fp32", channels_last=False)
    result = fit(build_model(TINY, seed=4), loaders.train, loaders.val, cfg, 10, device=CPU)
    loaders.train.set_epoch(0)
    model = build_model(TINY, seed=4)
    old = _old_train_one_epoch(model, loaders.train, make_optimizer(model, cfg), cfg.grad_clip)
    assert result.history[0]["train_loss"] == old
