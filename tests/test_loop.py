import numpy as np
import pytest
import torch

from vidtune.data import make_loaders
from vidtune.trainable.core import (
    DivergedError,
    ModelConfig,
    TrainConfig,
    build_model,
    evaluate,
    fit,
)

TINY = ModelConfig(conv_widths=(8, 16), lstm_hidden=32, spatial_pool=2)


def test_loader_batches_and_epoch_order(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    clips, labels = next(iter(loaders.train))
    assert clips.shape == (16, 6, 3, 16, 16) and clips.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert -1.0 <= clips.min() and clips.max() <= 1.0
    n = sum(len(y) for _, y in loaders.train) + sum(len(y) for _, y in loaders.val)
    assert n == 200
    first = [y.tolist() for _, y in loaders.train]
    loaders.train.set_epoch(1)
    second = [y.tolist() for _, y in loaders.train]
    loaders.train.set_epoch(0)
    assert first != second and first == [y.tolist() for _, y in loaders.train]


def test_tiny_training_beats_chance(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    model = build_model(TINY, seed=0)
    result = fit(model, loaders.train, loaders.val, TrainConfig(lr=3e-3, epochs=8), 10,
                 device=torch.device("cpu"))
    assert len(result.history) == 8
    # chance is 10%; temporal pairs need the LSTM
    assert result.history[-1]["val_acc"] >= 0.4, result.history
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    ev = evaluate(model, loaders.val, torch.device("cpu"), 10)
    assert ev.accuracy == pytest.approx(result.history[-1]["val_acc"])
    assert np.sum(ev.confusion) == 40 and len(ev.per_class_accuracy) == 10


def test_fit_is_deterministic_and_resumes_exactly(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    cfg = TrainConfig(lr=2e-3, epochs=3, seed=5)
    full = fit(build_model(TINY, seed=5), loaders.train, loaders.val, cfg, 10)

    saved = {}

    def stop_after_two(metrics, state_fn):
        if metrics["epoch"] == 2:
            saved.update(state_fn())
            return True
        return False

    part = fit(build_model(TINY, seed=5), loaders.train, loaders.val, cfg, 10, on_epoch=stop_after_two)
    assert part.stopped_early and len(part.history) == 2
    resumed = fit(build_model(TINY, seed=99), loaders.train, loaders.val, cfg, 10, resume=saved)
    assert len(resumed.history) == 3
    for key in ("train_loss", "val_loss", "val_acc"):
        assert resumed.history[-1][key] == pytest.approx(full.history[-1][key], rel=1e-5)


def test_nan_loss_raises_diverged(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    model = build_model(TINY, seed=0)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(DivergedError):
        fit(model, loaders.train, loaders.val, TrainConfig(epochs=1), 10)
