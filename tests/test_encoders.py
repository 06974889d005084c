"""Optional torchvision encoders beside the seed's conv blocks, with weights from a local file
only: loaded when they fit, a clear error when they are missing or do not fit, never a
download."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from vidtune.trainable.core.config import ENCODERS, ModelConfig
from vidtune.trainable.core.encoders import CHANNELS, TorchvisionEncoder, weights_for
from vidtune.trainable.core.model import build_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """State dicts of the whole torchvision classifiers, saved as torchvision publishes them."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(7)
    out = {}
    for name, make in (("resnet18", torchvision.models.resnet18),
                       ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small)):
        out[name] = folder / f"{name}.pth"
        torch.save(make(weights=None).state_dict(), out[name])
    return out


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_an_encoder_takes_the_clips_and_its_local_weights(name, weights):
    cfg = ModelConfig(encoder=name, num_classes=3, lstm_hidden=16, spatial_pool=2)
    model = build_model(cfg, seed=0, encoder_weights=weights[name])
    assert model.feature_dim == CHANNELS[name] * 4
    saved = torch.load(weights[name], weights_only=True)
    loaded = model.cnn[0].features.state_dict()
    first = "conv1.weight" if name == "resnet18" else "features.0.0.weight"
    assert torch.equal(next(iter(loaded.values())), saved[first])
    assert sum(torch.equal(v, saved[k]) for k, v in _full_keys(name, loaded).items()) == len(loaded)
    logits = model(torch.randn(2, 3, 3, 64, 48))                     # (B, T, C, H, W)
    assert logits.shape == (2, 3)
    fresh = build_model(cfg, seed=0)                                  # random weights instead
    assert not torch.equal(next(iter(fresh.cnn[0].features.state_dict().values())), saved[first])


def _full_keys(name: str, features: dict) -> dict:
    """The encoder's keys as the whole classifier names them."""
    if name == "mobilenet_v3_small":
        return {f"features.{k}": v for k, v in features.items()}
    parts = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return {f"{parts[int(k.split('.')[0])]}.{k.split('.', 1)[1]}": v for k, v in features.items()}


def test_weights_that_are_missing_or_do_not_fit(weights, tmp_path):
    cfg = ModelConfig(encoder="resnet18", num_classes=2)
    with pytest.raises(ValueError, match=r"encoder weights .*nope.pth do not exist; give the local "
                       r"file of the resnet18 weights, e.g. torchvision's resnet18-f37072fd.pth "
                       r"\(vidtune never downloads weights\)"):
        build_model(cfg, encoder_weights=tmp_path / "nope.pth")
    with pytest.raises(ValueError, match=r"mobilenet_v3_small.pth do not fit resnet18 \(100 missing "
                       r"and 244 unexpected keys, first: missing conv1.weight\); give the resnet18"):
        build_model(cfg, encoder_weights=weights["mobilenet_v3_small"])
    (tmp_path / "text.pth").write_text("not torch")
    with pytest.raises(ValueError, match="text.pth are not a readable torch file"):
        build_model(cfg, encoder_weights=tmp_path / "text.pth")
    state = torch.load(weights["resnet18"], weights_only=True)
    wide = {**state, "conv1.weight": torch.zeros(32, 3, 7, 7)}
    torch.save(wide, tmp_path / "wide.pth")
    with pytest.raises(ValueError, match=r"wide.pth do not fit resnet18 \(size mismatch for "
                       r"conv1.weight"):
        build_model(cfg, encoder_weights=tmp_path / "wide.pth")
    # Without the head, or saved from DataParallel, or inside a checkpoint: still the weights.
    body = {f"module.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    torch.save({"state_dict": body, "epoch": 3}, tmp_path / "ckpt.pth")
    model = build_model(cfg, encoder_weights=tmp_path / "ckpt.pth")
    assert torch.equal(model.cnn[0].features[0].weight, state["conv1.weight"])
    with pytest.raises(ValueError, match="the model's encoder is the seed's conv blocks"):
        build_model(ModelConfig(num_classes=2), encoder_weights=weights["resnet18"])
    with pytest.raises(ValueError, match="encoder is 'vit'; known: conv, resnet18, "
                       "mobilenet_v3_small"):
        ModelConfig(encoder="vit")
    assert ENCODERS == ("conv", *CHANNELS)


def test_which_file_an_encoder_gets():
    assert weights_for("", "resnet18") is None
    assert weights_for("/w/r.pth", "resnet18") == "/w/r.pth"
    assert weights_for("/w/r.pth", "conv") is None
    both = "resnet18=/w/r.pth,mobilenet_v3_small=/w/m.pth"
    assert weights_for(both, "mobilenet_v3_small") == "/w/m.pth"
    assert weights_for("resnet18=/w/r.pth", "mobilenet_v3_small") is None


_OFFLINE = """
import socket, sys, torch
def refuse(*args, **kwargs):
    raise OSError("network used")
socket.socket.connect = refuse
socket.create_connection = refuse
from vidtune.trainable.core.config import ModelConfig
from vidtune.trainable.core.model import build_model
for name in ("resnet18", "mobilenet_v3_small"):
    build_model(ModelConfig(encoder=name, num_classes=2), seed=0)
build_model(ModelConfig(encoder="resnet18", num_classes=2), encoder_weights=sys.argv[1])
print("ok")
"""


def test_nothing_is_downloaded(weights, tmp_path):
    """With the network refused and an empty TORCH_HOME, both encoders build, with and
    without a weights file, and TORCH_HOME stays empty."""
    home = tmp_path / "torch-home"
    home.mkdir()
    out = subprocess.run([sys.executable, "-c", _OFFLINE, str(weights["resnet18"])],
                         capture_output=True, text=True, env={"TORCH_HOME": str(home),
                                                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert list(home.rglob("*")) == []


def test_a_saved_model_with_an_encoder_loads_without_the_weights_file(weights, tmp_path):
    from vidtune.data import DataConfig
    from vidtune.trainable.best.artifact import load_artifact, save_artifact
    from vidtune.trainable.core.config import TrainConfig

    cfg = ModelConfig(encoder="mobilenet_v3_small", num_classes=2, lstm_hidden=8, spatial_pool=1)
    model = build_model(cfg, seed=0, encoder_weights=weights["mobilenet_v3_small"]).eval()
    save_artifact(tmp_path / "m", model, TrainConfig(), DataConfig(frames=2, height=32, width=32),
                  ("a", "b"), {})
    weights["mobilenet_v3_small"].rename(weights["mobilenet_v3_small"].with_suffix(".moved"))
    try:
        loaded, config = load_artifact(tmp_path / "m")
    finally:
        weights["mobilenet_v3_small"].with_suffix(".moved").rename(weights["mobilenet_v3_small"])
    clips = torch.randn(2, 2, 3, 32, 32)
    assert config["model"]["encoder"] == "mobilenet_v3_small"
    assert torch.allclose(model(clips), loaded(clips))
    assert isinstance(loaded.cnn[0], TorchvisionEncoder)
