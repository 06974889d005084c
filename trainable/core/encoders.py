"""Optional torchvision encoders for VideoModel, beside the seed's conv blocks.

resnet18 and mobilenet_v3_small without their classifier heads: frames (N, 3, H, W) in, a
feature map (N, C, H/32, W/32) out. Their weights only ever come from a local file
(load_encoder_weights): the models are built with weights=None, so torchvision never
downloads anything. Pretrained weights expect ImageNet's normalisation, and the clips arrive
scaled to [-1, 1] (data.loaders.to_float), so the encoder re-normalises them itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidtune.data.config import weights_items
from vidtune.trainable.core.config import ENCODERS

CHANNELS = {"resnet18": 512, "mobilenet_v3_small": 576}       # of the feature map
HEAD = {"resnet18": "fc.", "mobilenet_v3_small": "classifier."}   # keys a weights file may hold
WEIGHTS_FILE = {"resnet18": "resnet18-f37072fd.pth",
                "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth"}   # torchvision's names
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def torchvision_model(name: str) -> nn.Module:
    """The whole torchvision classifier, randomly initialised (weights=None: no download)."""
    import torchvision.models as models

    if name == "resnet18":
        return models.resnet18(weights=None)
    if name == "mobilenet_v3_small":
        return models.mobilenet_v3_small(weights=None)
    raise ValueError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")


def _features(name: str, model: nn.Module) -> nn.Module:
    """The backbone without its pooling and classifier head."""
    if name == "resnet18":
        parts = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return nn.Sequential(*(model.get_submodule(p) for p in parts))
    return model.get_submodule("features")


class TorchvisionEncoder(nn.Module):
    """A torchvision backbone as VideoModel's per-frame encoder: (N, 3, H, W) -> (N, C, h, w)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.features = _features(name, torchvision_model(name))
        self.channels = CHANNELS[name]
        # to_float gives (x / 255 - 0.5) / 0.5; ImageNet weights want (x / 255 - mean) / std.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    mean: Tensor
    std: Tensor

    def forward(self, x: Tensor) -> Tensor:
        return self.features((x * 0.5 + 0.5 - self.mean) / self.std)


def _problem(exc: Exception) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()] or [text]
    return lines[0]


def load_encoder_weights(encoder: TorchvisionEncoder, path: str | Path) -> None:
    """Load a local weights file into the encoder: a state dict of the whole torchvision
    classifier, as torchvision publishes it (e.g. resnet18-f37072fd.pth); the head's weights
    are ignored and may be missing. ValueError, naming the file and the fix, otherwise."""
    name, path = encoder.name, Path(path).expanduser()
    example = f"{name} weights, e.g. torchvision's {WEIGHTS_FILE[name]}"
    if not path.is_file():
        raise ValueError(f"encoder weights {path} do not exist; give the local file of the "
                         f"{example} (vidtune never downloads weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several kinds for a foreign file
        raise ValueError(f"encoder weights {path} are not a readable torch file "
                         f"({type(exc).__name__}: {_problem(exc)}); give the {example}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]              # a training checkpoint around the weights
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"encoder weights {path} hold no state dict of tensors; give the "
                         f"{example}")
    state = {k.removeprefix("module."): v for k, v in state.items()}   # saved from DataParallel
    full = torchvision_model(name)
    try:
        missing, unexpected = full.load_state_dict(state, strict=False)
    except RuntimeError as exc:                 # shapes that differ
        raise ValueError(f"encoder weights {path} do not fit {name} ({_problem(exc)}); give the "
                         f"{example}") from None
    missing = [k for k in missing if not k.startswith(HEAD[name])]
    if missing or unexpected:
        first = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}")
        raise ValueError(f"encoder weights {path} do not fit {name} ({len(missing)} missing and "
                         f"{len(unexpected)} unexpected keys, first: {first}); give the {example}")
    encoder.features.load_state_dict(_features(name, full).state_dict())


def weights_for(spec: str, encoder: str) -> str | None:
    """The file --encoder-weights gives `encoder` (NAME=PATH, or a lone PATH for whichever
    encoder a run uses); None if none."""
    items = weights_items(spec)
    named = {name: path for name, path in items if name}
    if encoder in named:
        return named[encoder]
    bare = [path for name, path in items if not name]
    return bare[0] if bare and encoder != "conv" else None
