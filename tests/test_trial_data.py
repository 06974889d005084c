"""What a space samples for the data and the encoder reaches the trial; the checks before Ray
of --encoder-weights; multi-clip evaluation averages probabilities over windows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from vidtune.data import ClipLoader, DataConfig, MultiClipLoader, VideoArrays
from vidtune.search_spaces import get_space
from vidtune.trainable.core.config import ModelConfig
from vidtune.trainable.core.loop import evaluate
from vidtune.trainable.core.model import build_model
from vidtune.trainable.core.preflight import check_encoder_weights, space_encoders
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import run_trial, trial_configs, trial_data

SMALL = {"encoder": "conv", "conv_blocks": 1, "conv_base": 4, "lstm_hidden": 8, "lr": 3e-3}


def train(params: dict, cfg: SearchConfig) -> list[tuple[dict, dict]]:
    reports: list[tuple[dict, dict]] = []
    run_trial(params, cfg, lambda metrics, state: reports.append((metrics, state)))
    return reports


@pytest.fixture
def stored_data(cache_dir):
    """40 synthetic clips with 6 stored frames a clip, 4 shown: room for temporal jitter."""
    return DataConfig(num_clips=40, frames=4, stored_frames=6, height=16, width=16, noise=0.2,
                      cache_dir=cache_dir)


def test_sampled_augmentation_reaches_the_trial(stored_data):
    cfg = SearchConfig(space="video", data=stored_data, max_epochs=1, grace_period=1)
    assert trial_data({**SMALL, "augment": True}, cfg).augment is True
    assert trial_data({**SMALL, "augment": False}, cfg).augment is False
    assert trial_data(SMALL, cfg).augment is False                  # the search's own setting
    model_cfg, _ = trial_configs({**SMALL, "augment": True}, cfg, 10)   # not a model setting
    assert model_cfg.conv_widths == (4,)
    plain = train({**SMALL, "augment": False}, cfg)
    again = train({**SMALL, "augment": False}, cfg)
    augmented = train({**SMALL, "augment": True}, cfg)
    assert plain[0][0]["train_loss"] == again[0][0]["train_loss"]   # the same batches
    assert augmented[0][0]["train_loss"] != plain[0][0]["train_loss"]
    assert augmented[0][0]["val_loss"] != plain[0][0]["val_loss"]   # another model, same val set


def test_the_video_space_samples_encoder_and_augmentation():
    space = get_space("video")
    assert space_encoders(space) == ["conv", "resnet18", "mobilenet_v3_small"]
    assert space.default["augment"] is False and space.default["encoder"] == "conv"
    assert space_encoders(get_space("default")) == ["conv"]


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18-local.pth"
    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_pretrained_weights_reach_the_trial(stored_data, resnet_file):
    """With a learning rate of 1e-12 the first conv of the trained model is still the file's."""
    params = {**SMALL, "encoder": "resnet18", "lr": 1e-12}
    stored_data = replace(stored_data, num_clips=20, frames=2, stored_frames=0)
    saved = torch.load(resnet_file, weights_only=True)["conv1.weight"]
    with_file = SearchConfig(space="video", max_epochs=1, grace_period=1,
                             data=replace(stored_data, encoder_weights=f"resnet18={resnet_file}"))
    state = train(params, with_file)[-1][1]
    assert torch.allclose(state["model"]["cnn.0.features.0.weight"], saved, atol=1e-8)
    without = SearchConfig(space="video", data=stored_data, max_epochs=1, grace_period=1)
    state = train(params, without)[-1][1]
    assert not torch.allclose(state["model"]["cnn.0.features.0.weight"], saved, atol=1e-3)


def test_encoder_weights_are_checked_before_ray(stored_data, resnet_file, tmp_path, capsys):
    def check(space: str, spec: str) -> None:
        check_encoder_weights(SearchConfig(space=space, data=replace(stored_data,
                                                                     encoder_weights=spec)))

    with pytest.raises(ValueError, match=r"space 'video' samples resnet18 and mobilenet_v3_small: "
                       "say which file is whose, e.g. resnet18=PATH,mobilenet_v3_small=PATH"):
        check("video", str(resnet_file))
    with pytest.raises(ValueError, match="space 'default' never uses a torchvision encoder"):
        check("default", str(resnet_file))
    with pytest.raises(ValueError, match=r"space 'video' samples encoder mobilenet_v3_small, but "
                       r"--encoder-weights .* has no file for it; add mobilenet_v3_small=PATH"):
        check("video", f"resnet18={resnet_file}")
    with pytest.raises(ValueError, match=r"gone.pth do not exist"):
        check("video", f"resnet18={tmp_path / 'gone.pth'},mobilenet_v3_small={resnet_file}")
    with pytest.raises(ValueError, match=r"resnet18-local.pth do not fit mobilenet_v3_small"):
        check("video", f"resnet18={resnet_file},mobilenet_v3_small={resnet_file}")
    with pytest.raises(ValueError, match=r"names 'resnet50', but space 'video' uses the encoders "
                       "resnet18, mobilenet_v3_small"):
        check("video", f"resnet50={resnet_file}")
    capsys.readouterr()
    check("video", "")
    assert ("note: encoder resnet18, mobilenet_v3_small starts from random weights (no "
            "--encoder-weights)") in capsys.readouterr().err


def test_multi_clip_evaluation_averages_probabilities_over_windows():
    rng = np.random.default_rng(0)
    arrays = VideoArrays(rng.integers(0, 256, (10, 9, 16, 16, 3), dtype=np.uint8),
                         np.arange(10) % 3, ("a", "b", "c"))
    model = build_model(ModelConfig(conv_widths=(4,), lstm_hidden=8, num_classes=3,
                                    spatial_pool=2), seed=0).eval()
    ev = evaluate(model, MultiClipLoader(arrays, np.arange(10), 4, frames=5, clips=3),
                  torch.device("cpu"), 3, precision="fp32")   # as the fp32 reference below
    probs = torch.zeros(10, 3)
    with torch.no_grad():
        for start in (0, 2, 4):                          # 3 windows of 5 spread over 9 frames
            view = VideoArrays(np.ascontiguousarray(arrays.clips[:, start:start + 5]),
                               arrays.labels, arrays.class_names)
            (x, _), = list(ClipLoader(view, np.arange(10), 10, shuffle=False))
            probs += model(x).softmax(-1) / 3
    labels = torch.from_numpy(arrays.labels)
    assert ev.accuracy == pytest.approx((probs.argmax(1) == labels).float().mean().item())
    assert ev.loss == pytest.approx(-probs[torch.arange(10), labels].log().mean().item(), rel=1e-5)
    one = evaluate(model, MultiClipLoader(arrays, np.arange(10), 4, frames=5, clips=1),
                   torch.device("cpu"), 3)
    middle = evaluate(model, ClipLoader(arrays, np.arange(10), 4, shuffle=False, frames=5),
                      torch.device("cpu"), 3)
    assert one.loss == pytest.approx(middle.loss, rel=1e-5)
