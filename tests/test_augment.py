"""Augmentation that keeps labels: windows of the stored frames, one crop and one colour per
clip, no flips; seeded by (seed, epoch, clip), so resume reproduces every batch; validation
never augmented; multi-clip evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _videos import coded_frame, read_code

from vidtune.data import ClipLoader, MultiClipLoader, VideoArrays, make_loaders
from vidtune.data.augment import Augmentation, window_starts

ONLY_TIME = Augmentation(scale=(1.0, 1.0), ratio=(1.0, 1.0), brightness=0.0, contrast=0.0,
                         saturation=0.0)


def coded_store(n: int, stored: int, height: int = 24, width: int = 36) -> VideoArrays:
    """n clips, clip c's frame j showing the number 100 * c + j; clip c is class c."""
    clips = np.stack([np.stack([coded_frame(100 * c + j, height, width) for j in range(stored)])
                      for c in range(n)])                                  # (n, S, H, W, 3)
    return VideoArrays(clips, np.arange(n), tuple(f"c{c}" for c in range(n)))


def batches(loader: ClipLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def codes_of(clip: torch.Tensor) -> list[int]:
    """(T, 3, H, W) float in [-1, 1] -> the number each frame shows."""
    u8 = ((clip.permute(0, 2, 3, 1) * 0.5 + 0.5) * 255).round().byte().numpy()
    return [read_code(frame) for frame in u8]


def test_windows_are_random_per_epoch_and_the_order_does_not_change():
    arrays = coded_store(6, stored=10)
    plain = ClipLoader(arrays, np.arange(6), 4, shuffle=True, seed=3, frames=4)
    jitter = ClipLoader(arrays, np.arange(6), 4, shuffle=True, seed=3, frames=4, augment=ONLY_TIME)
    starts = set()
    for epoch in range(6):
        for (x0, y0), (x1, y1) in zip(batches(plain, epoch), batches(jitter, epoch), strict=True):
            assert torch.equal(y0, y1)                        # the same clips in the same order
            for clip, plain_clip, label in zip(x1, x0, y1, strict=True):
                codes = codes_of(clip)
                first = codes[0] - 100 * int(label)
                assert codes == [100 * int(label) + first + j for j in range(4)]   # consecutive
                assert 0 <= first <= 6
                starts.add(first)
                assert codes_of(plain_clip) == [100 * int(label) + 3 + j for j in range(4)]
    assert len(starts) >= 4                                   # the window moves


def test_augmentation_depends_on_seed_epoch_and_clip_only():
    """Epoch 3 is the same whether or not epochs 0-2 ran first: a resumed trial sees exactly
    the batches it would have seen."""
    rng = np.random.default_rng(0)
    arrays = VideoArrays(rng.integers(0, 256, (10, 8, 16, 16, 3), dtype=np.uint8),
                         np.arange(10) % 2, ("a", "b"))

    def loader(seed: int = 0) -> ClipLoader:
        return ClipLoader(arrays, np.arange(10), 4, shuffle=True, seed=seed, frames=6,
                          augment=Augmentation())

    fresh = batches(loader(), 3)
    warm = loader()
    for epoch in range(3):
        batches(warm, epoch)
    torch.manual_seed(123)                                    # torch's own RNG plays no part
    for (a, la), (b, lb) in zip(fresh, batches(warm, 3), strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other_epoch = batches(loader(), 4)
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(fresh, other_epoch, strict=True))
    other_seed = batches(loader(seed=1), 3)
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(fresh, other_seed, strict=True))


def test_one_crop_and_one_colour_for_every_frame_of_a_clip():
    still = np.zeros((12, 32, 32, 3), dtype=np.uint8)
    still[:, 4:20, 8:30] = (200, 60, 30)                      # the same picture in every frame
    arrays = VideoArrays(np.stack([still] * 4), np.array([0, 1, 0, 1]), ("a", "b"))
    loader = ClipLoader(arrays, np.arange(4), 4, shuffle=True, frames=8, augment=Augmentation())
    changed = 0
    for epoch in range(5):
        (clips, _), = batches(loader, epoch)
        for clip in clips:                                    # (T, 3, H, W)
            assert all(torch.equal(clip[0], frame) for frame in clip[1:])
            changed += not torch.allclose(clip[0], loader_plain_frame(still))
    assert changed >= 15                                      # and the picture did change


def loader_plain_frame(still: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(still[0]).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)


def test_motion_keeps_its_direction():
    """No flip, no time reversal: a square moving right still moves right, a brightening clip
    still brightens, in every augmented view."""
    right = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    bright = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    for t in range(8):
        right[t, 12:20, 2 + 3 * t: 10 + 3 * t] = 255
        bright[t] = 40 + 25 * t
    arrays = VideoArrays(np.stack([right, bright]), np.array([0, 1]), ("right", "brighten"))
    loader = ClipLoader(arrays, np.arange(2), 2, shuffle=True, frames=6, augment=Augmentation())
    cols = torch.arange(32, dtype=torch.float32)
    for epoch in range(25):
        (clips, labels), = batches(loader, epoch)
        for clip, label in zip(clips, labels, strict=True):
            mass = (clip.mean(1) + 1).clamp(min=0)            # (T, H, W)
            if int(label) == 0:
                x = (mass.sum(1) * cols).sum(1) / mass.sum((1, 2))    # (T,) centre of mass
                assert torch.all(x[1:] > x[:-1]), x
            else:
                level = clip.mean((1, 2, 3))                  # (T,)
                assert torch.all(level[1:] > level[:-1]), level


def test_validation_is_never_augmented(tiny_data):
    from dataclasses import replace

    stored = replace(tiny_data, stored_frames=8, frames=6)
    plain = make_loaders(stored, batch_size=16, progress=False)
    augmented = make_loaders(replace(stored, augment=True), batch_size=16, progress=False)
    for (a, la), (b, lb) in zip(plain.val, augmented.val, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb) and a.shape[1] == 6
    train_a, train_b = batches(plain.train, 0), batches(augmented.train, 0)
    assert all(torch.equal(la, lb) for (_, la), (_, lb) in zip(train_a, train_b, strict=True))
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(train_a, train_b, strict=True))
    # The middle window of the 8 stored frames: frames 1..6.
    clip = plain.val.arrays.clips[plain.val.indices[0]]
    expected = torch.from_numpy(np.array(clip[1:7])).permute(0, 3, 1, 2).float()
    assert torch.allclose(next(iter(plain.val))[0][0], expected.div(255).sub(0.5).div(0.5))


def test_synthetic_store_with_more_frames_is_a_separate_store(tiny_data, tmp_path):
    from dataclasses import replace

    from vidtune.data import load_arrays

    cfg = replace(tiny_data, cache_dir=str(tmp_path))
    assert load_arrays(cfg, progress=False).clips.shape[1] == 6
    assert load_arrays(replace(cfg, stored_frames=9), progress=False).clips.shape[1] == 9
    assert len(list((tmp_path / "synthetic").iterdir())) == 2
    with pytest.raises(ValueError, match=r"stored_frames is 4, but must be 0 \(as many as "
                       r"--frames\) or at least frames \(6\), e.g. 12"):
        replace(cfg, stored_frames=4)


def test_multi_clip_windows():
    arrays = coded_store(3, stored=10)
    loader = MultiClipLoader(arrays, np.arange(3), 2, frames=4, clips=3)
    (x, y), (x2, y2) = list(loader)
    assert x.shape == (2, 3, 4, 3, 24, 36) and y.tolist() == [0, 1] and x2.shape[0] == 1
    assert [codes_of(window)[0] for window in x[1]] == [100, 103, 106]    # starts 0, 3, 6
    assert list(window_starts(10, 4, 1)) == [3]                            # the middle one
    with pytest.raises(ValueError, match=r"clips is 8, but the cache keeps 10 frames per clip, so "
                       r"there are only 7 windows of 4; evaluate with --clips 7 or less"):
        window_starts(10, 4, 8)


def test_the_synthetic_benchmark_is_unchanged(tiny_data):
    """Its cache key and its batches are what they were before clips could be cut and augmented, so the recorded
    figures stand: same store, same clips in the same order, nothing cut or augmented."""
    from vidtune.data.loaders import _synthetic_key, to_float

    assert _synthetic_key(tiny_data) == {"kind": "synthetic", "num_clips": 200, "frames": 6,
                                         "height": 16, "width": 16, "noise": 0.2, "seed": 0}
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    arrays = loaders.train.arrays
    for epoch in (0, 3):
        order = loaders.train.indices[np.random.default_rng([0, epoch]).permutation(
            len(loaders.train.indices))]
        for k, (clips, labels) in enumerate(batches(loaders.train, epoch)):
            idx = np.sort(order[16 * k:16 * (k + 1)])
            assert torch.equal(clips, to_float(torch.from_numpy(np.array(arrays.clips[idx]))))
            assert torch.equal(labels, torch.from_numpy(arrays.labels[idx]))


@pytest.mark.parametrize("kwargs,match", [
    ({"decode_workers": -1}, r"decode_workers is -1, but must be >= 0 \(0: one per core\)"),
    ({"split_file": "a.txt"}, "split_file is 'a.txt', but the synthetic benchmark has its own "
                              "split; give --split-file with a video folder or manifest"),
    ({"source": "v", "split_file": " , "}, "split_file is ' , '; give one or more paths"),
    ({"encoder_weights": "res net=/w.pth"}, "encoder_weights item 'res net=/w.pth' is not "
                                            "NAME=PATH; write e.g. resnet18=/models/resnet18.pth"),
    ({"encoder_weights": "resnet18="}, "encoder_weights item 'resnet18=' is not NAME=PATH"),
])
def test_data_config_refuses_bad_new_settings(kwargs, match):
    from vidtune.data import DataConfig

    with pytest.raises(ValueError, match=match):
        DataConfig(**kwargs)
