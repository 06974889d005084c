"""VideoModel: a per-frame 2D CNN, an LSTM over the frame features, and a linear head.

Input clips are (B, T, C, H, W). Each frame goes through blocks of
Conv2d(3x3) -> BatchNorm2d -> ReLU -> MaxPool2d(2) with growing widths (default 32, 64, 128),
or, with encoder resnet18 or mobilenet_v3_small, through that torchvision backbone (weights
from a local file, encoders.py). The feature map is average-pooled to a small spatial grid
(keeping where things are, which motion classes need), flattened, and fed in time order to an
LSTM (hidden 256 by default). The last hidden state goes to a Linear head over num_classes.

The T frames of a batch go through the CNN in one call, as a batch of B*T frames. Under
autocast (a bf16 trial, core/precision.py) the LSTM still computes in LSTM_DTYPE (fp32):
autocast would choose its dtype itself, fp16 in cuDNN's RNN on CUDA (issue 23).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidtune.trainable.core.config import ModelConfig
from vidtune.trainable.core.encoders import TorchvisionEncoder, load_encoder_weights
from vidtune.trainable.core.precision import LSTM_DTYPE


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),  # BN supplies the bias
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class VideoModel(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        if cfg.encoder == "conv":
            widths = (cfg.in_channels, *cfg.conv_widths)
            blocks: list[nn.Module] = [conv_block(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
            channels = cfg.conv_widths[-1]
        else:
            if cfg.in_channels != 3:
                raise ValueError(f"encoder {cfg.encoder} takes RGB frames, but in_channels is "
                                 f"{cfg.in_channels}")
            encoder = TorchvisionEncoder(cfg.encoder)
            blocks, channels = [encoder], encoder.channels
        self.cnn = nn.Sequential(
            *blocks,
            nn.AdaptiveAvgPool2d(cfg.spatial_pool),
            nn.Flatten(),
        )
        self.feature_dim = channels * cfg.spatial_pool**2
        self.lstm = nn.LSTM(
            input_size=self.feature_dim,
            hidden_size=cfg.lstm_hidden,
            num_layers=cfg.lstm_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.lstm_hidden, cfg.num_classes)

    def forward_features(self, clips: Tensor) -> Tensor:
        if clips.ndim != 5 or clips.shape[2] != self.cfg.in_channels:
            raise ValueError(
                f"expected clips of shape (B, T, {self.cfg.in_channels}, H, W), got {tuple(clips.shape)}"
            )
        B, T = clips.shape[:2]
        x = self.cnn(clips.flatten(0, 1))       # (B*T, F): all frames in one call
        out = self.run_lstm(x.view(B, T, -1))   # (B, T, hidden)
        return out[:, -1]                       # (B, hidden): state after the last frame

    def run_lstm(self, x: Tensor) -> Tensor:
        """The LSTM over (B, T, F) -> (B, T, hidden), in LSTM_DTYPE even under autocast."""
        where = x.device.type
        if not torch.is_autocast_enabled(where):
            return self.lstm(x)[0]              # fp32 as it stands: the graph torch.export sees
        with torch.autocast(where, enabled=False):
            return self.lstm(x.to(LSTM_DTYPE))[0]

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(self.drop(features))   # (B, num_classes)

    def forward(self, clips: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(clips))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(cfg: ModelConfig | None = None, seed: int | None = None,
                encoder_weights: str | Path | None = None) -> VideoModel:
    """A freshly initialised model; with `seed`, the same weights every time. A torchvision
    encoder starts from `encoder_weights` (a local file) if given, else from random weights."""
    if seed is not None:
        torch.manual_seed(seed)
    model = VideoModel(cfg)
    if encoder_weights is not None:
        encoder = model.cnn[0]
        if not isinstance(encoder, TorchvisionEncoder):
            raise ValueError(f"encoder_weights is {str(encoder_weights)!r}, but the model's encoder "
                             "is the seed's conv blocks; choose encoder resnet18 or "
                             "mobilenet_v3_small, or drop the weights")
        load_encoder_weights(encoder, encoder_weights)
    return model
