import pytest
import torch

from vidtune.trainable.core import (
    ModelConfig,
    VideoModel,
    build_model,
    count_parameters,
    split_params,
)


def test_default_model_matches_the_seed():
    model = VideoModel()
    assert model.cfg.conv_widths == (32, 64, 128)
    assert model.cfg.lstm_hidden == 256
    assert model.lstm.hidden_size == 256
    assert model.head.out_features == 10
    blocks = [m for m in model.cnn if isinstance(m, torch.nn.Sequential)]
    assert len(blocks) == 3
    for block, width in zip(blocks, (32, 64, 128), strict=True):
        kinds = [type(m).__name__ for m in block]
        assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
        assert block[0].out_channels == width
    assert blocks[0][0].in_channels == 3


@pytest.mark.parametrize("widths,hidden,layers,classes", [((8,), 16, 1, 10), ((8, 16), 32, 2, 4)])
def test_forward_shapes(widths, hidden, layers, classes):
    model = VideoModel(ModelConfig(conv_widths=widths, lstm_hidden=hidden, lstm_layers=layers,
                                   num_classes=classes, dropout=0.1))
    clips = torch.randn(3, 5, 3, 16, 20)                 # (B, T, C, H, W)
    assert model.forward_features(clips).shape == (3, hidden)
    assert model(clips).shape == (3, classes)


def test_time_order_changes_the_output():
    model = build_model(ModelConfig(conv_widths=(8,), lstm_hidden=16), seed=0).eval()
    clips = torch.randn(2, 6, 3, 16, 16)
    assert not torch.allclose(model(clips), model(clips.flip(1)))


def test_seeded_build_is_reproducible():
    a = build_model(ModelConfig(conv_widths=(8,)), seed=3)
    b = build_model(ModelConfig(conv_widths=(8,)), seed=3)
    assert count_parameters(a) == count_parameters(b)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_bad_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        VideoModel(ModelConfig(conv_widths=(8,)))(torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize("kwargs,match", [
    ({"conv_widths": ()}, "conv_widths"),
    ({"conv_widths": (8, 0)}, "conv_widths"),
    ({"lstm_hidden": 0}, "lstm_hidden"),
    ({"dropout": 1.0}, "dropout"),
    ({"num_classes": 1}, "num_classes"),
])
def test_model_config_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_split_params_routes_and_rejects_typos():
    model, train = split_params({"conv_widths": [16, 32], "lstm_hidden": 64, "lr": 0.01})
    assert model.conv_widths == (16, 32) and model.lstm_hidden == 64 and train.lr == 0.01
    with pytest.raises(ValueError, match="lstm_hiden"):
        split_params({"lstm_hiden": 64})
    with pytest.raises(ValueError, match="lr is -1"):
        split_params({"lr": -1.0})
