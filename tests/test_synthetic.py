import numpy as np
import pytest

from vidtune.data import (
    CLASS_NAMES,
    DataConfig,
    load_arrays,
    make_synthetic,
    render_clip,
    stratified_split,
)
from vidtune.data.store import open_store


def test_generator_is_deterministic():
    a = make_synthetic(40, 6, 16, 16, noise=0.3, seed=7)
    b = make_synthetic(40, 6, 16, 16, noise=0.3, seed=7)
    c = make_synthetic(40, 6, 16, 16, noise=0.3, seed=8)
    assert np.array_equal(a.clips, b.clips) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.clips, c.clips)
    # Clip n is rendered from its own stream, (seed, n), and its label alone: it does not depend
    # on how many clips were asked for, nor on the other clips. (The label shuffle does depend
    # on the count, so clip n of a 20-clip set matches only where its label is the same.)
    short = make_synthetic(20, 6, 16, 16, 0.3, 7)
    for arrays in (a, short):
        for n, label in enumerate(arrays.labels):
            expected = render_clip(int(label), np.random.default_rng([7, n]), 6, 16, 16, 0.3)
            assert np.array_equal(arrays.clips[n], expected), n
    same = np.flatnonzero(short.labels == a.labels[:20])
    assert len(same) > 0
    assert all(np.array_equal(short.clips[n], a.clips[n]) for n in same)


def test_classes_are_balanced():
    arrays = make_synthetic(103, 4, 16, 16, seed=1)
    counts = np.bincount(arrays.labels, minlength=len(CLASS_NAMES))
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103
    assert arrays.clips.shape == (103, 4, 16, 16, 3) and arrays.clips.dtype == np.uint8


@pytest.mark.parametrize("pair", range(5))
def test_odd_classes_are_time_reverses_of_even_ones(pair):
    fwd = render_clip(2 * pair, np.random.default_rng(11), 8, 24, 24, noise=0.4)
    rev = render_clip(2 * pair + 1, np.random.default_rng(11), 8, 24, 24, noise=0.4)
    assert np.array_equal(rev, fwd[::-1])
    assert not np.array_equal(rev, fwd)           # order really differs
    # same frames, different order: a frame-averaging model sees identical input
    assert np.array_equal(np.sort(fwd.reshape(8, -1).sum(1)), np.sort(rev.reshape(8, -1).sum(1)))


def test_classes_differ_in_content():
    # The frame-mean of a clip pair matches, but different pairs render different scenes.
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    means = [render_clip(2 * k, rng(), 8, 24, 24, 0.0).astype(float).mean(0) for k in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert np.abs(means[i] - means[j]).mean() > 1.0


def test_stratified_split_is_deterministic_and_disjoint():
    labels = np.arange(100) % 10
    tr, va = stratified_split(labels, 0.2, seed=0)
    tr2, va2 = stratified_split(labels, 0.2, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not set(tr) & set(va) and len(tr) + len(va) == 100
    assert np.all(np.bincount(labels[va], minlength=10) == 2)


def test_synthetic_store_is_cached(tmp_path):
    cfg = DataConfig(num_clips=30, frames=4, height=16, width=16, cache_dir=str(tmp_path))
    a = load_arrays(cfg, progress=False)
    assert isinstance(a.clips, np.memmap)
    stores = list((tmp_path / "synthetic").iterdir())
    assert len(stores) == 1
    mtime = (stores[0] / "clips.u8").stat().st_mtime_ns
    b = load_arrays(cfg, progress=False)
    assert np.array_equal(a.clips, b.clips)
    assert (stores[0] / "clips.u8").stat().st_mtime_ns == mtime
    # a different T is a different store
    load_arrays(DataConfig(num_clips=30, frames=5, height=16, width=16, cache_dir=str(tmp_path)), progress=False)
    assert len(list((tmp_path / "synthetic").iterdir())) == 2
    # a truncated store is not trusted
    with open(stores[0] / "clips.u8", "r+b") as f:
        f.truncate(10)
    assert open_store(stores[0]) is None


@pytest.mark.parametrize("kwargs,match", [
    ({"frames": 0}, "frames is 0"),
    ({"height": 4}, "at least 8x8"),
    ({"val_fraction": 1.0}, "val_fraction is 1.0"),
    ({"noise": 2.0}, "noise is 2.0"),
])
def test_data_config_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kwargs)
