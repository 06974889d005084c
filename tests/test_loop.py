from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import Tensor, nn

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

# Classes 2k and 2k+1 are each other played backwards, with the same distribution of frames,
# so a model blind to frame order tells them apart at 50 % in expectation. With the 40 val
# clips of tiny_data that is 0.50 +- 0.08 (binomial sd); 0.8 is 3.8 sd above it. The real run
# below scores 1.0 (0.95-1.0 with model seeds 1-4); the same model trained and evaluated on
# time-shuffled clips, test_pairs_need_frame_order, 0.55 (0.45-0.55 with seeds 1-4).
PAIR_ACC = 0.8


class TimeShuffled:
    """A loader whose clips come with their frames in a fresh random order: no order to use."""

    def __init__(self, loader, seed: int) -> None:
        self.loader, self.seed, self.epoch = loader, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        for clips, labels in self.loader:                           # (B, T, C, H, W)
            B, T = clips.shape[:2]
            perm = torch.rand(B, T, generator=gen).argsort(dim=1)   # (B, T)
            yield clips[torch.arange(B)[:, None], perm], labels


@torch.no_grad()
def pair_accuracy(model: nn.Module, loader) -> list[float]:
    """Per pair k: how often a clip of class 2k or 2k+1 gets the higher of those two logits.

    Only the pair's own two logits count, so this measures telling a clip from its time
    reversal, not recognizing which pair it belongs to.
    """
    model.eval()
    hits, counts = np.zeros(5), np.zeros(5)
    for clips, labels in loader:
        logits = model(clips)                                       # (B, 10)
        pair = labels // 2                                          # (B,)
        rows = torch.arange(len(labels))
        later = logits[rows, 2 * pair + 1] > logits[rows, 2 * pair]  # (B,) picks 2k+1
        correct = (2 * pair + later.long() == labels).numpy()
        np.add.at(hits, pair.numpy(), correct)
        np.add.at(counts, pair.numpy(), 1)
    assert counts.min() > 0, counts
    return (hits / counts).tolist()


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
    pairs = pair_accuracy(model, loaders.val)
    assert np.mean(pairs) >= PAIR_ACC, pairs   # the time-reversed pairs are told apart
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    ev = evaluate(model, loaders.val, torch.device("cpu"), 10)
    assert ev.accuracy == pytest.approx(result.history[-1]["val_acc"])
    assert np.sum(ev.confusion) == 40 and len(ev.per_class_accuracy) == 10


def test_pairs_need_frame_order(tiny_data):
    """The control for PAIR_ACC: the same training on time-shuffled clips stays near 50 %."""
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    train, val = TimeShuffled(loaders.train, seed=1), TimeShuffled(loaders.val, seed=2)
    model = build_model(TINY, seed=0)
    fit(model, train, val, TrainConfig(lr=3e-3, epochs=8), 10, device=torch.device("cpu"))
    pairs = pair_accuracy(model, val)
    assert np.mean(pairs) < PAIR_ACC, pairs
    # The control changes frame order only: each clip keeps its frames.
    (shuffled, _), (ordered, _) = next(iter(val)), next(iter(loaders.val))   # (B, T, C, H, W)
    assert not torch.equal(shuffled, ordered)
    key = lambda clips: clips.flatten(2).sum(2).sort(dim=1).values  # noqa: E731  (B, T)
    torch.testing.assert_close(key(shuffled), key(ordered))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_is_deterministic_and_resumes_exactly(tiny_data, precision):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    cfg = TrainConfig(lr=2e-3, epochs=3, seed=5, precision=precision)
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
        assert resumed.history[-1][key] == full.history[-1][key], key   # bit for bit


def test_nan_loss_raises_diverged(tiny_data):
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    model = build_model(TINY, seed=0)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(DivergedError):
        fit(model, loaders.train, loaders.val, TrainConfig(epochs=1), 10)
