"""`vidtune train` then `vidtune evaluate`: the seed's train.py / evaluation.py round trip."""

from __future__ import annotations

import json

import pytest
import torch

from vidtune.scripts.evaluate import main as evaluate_main
from vidtune.scripts.train import main as train_main
from vidtune.trainable.best.artifact import load_artifact

TINY = ["--conv-widths", "8,16", "--lstm-hidden", "32", "--epochs", "6", "--lr", "3e-3",
        "--num-clips", "200", "--frames", "6", "--height", "16", "--width", "16", "--noise", "0.2"]


def test_train_saves_a_model_that_evaluate_reproduces(tmp_path, cache_dir, capsys):
    out = tmp_path / "model"
    train_main([*TINY, "--cache-dir", cache_dir, "--out", str(out)])
    printed = capsys.readouterr().out
    final = json.loads(printed.strip().splitlines()[-1])
    assert f"final val_acc {final['val_acc']:.4f}" in printed
    assert final["val_acc"] > 0.2                       # chance is 0.1
    model, config = load_artifact(out)
    assert model.cfg.conv_widths == (8, 16) and model.cfg.lstm_hidden == 32
    assert config["class_names"][0] == "move_right" and config["preprocessing"]["frames"] == 6
    assert torch.load(out / "weights.pt", weights_only=True)

    evaluate_main([str(out), "--no-png"])
    assert f"val_acc {final['val_acc']:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--conv-widths", "8,x"], "conv widths '8,x' are not understood; write e.g. 32,64,128"),
    (["--lr", "-1"], "lr is -1.0"),
    (["--epochs", "0"], "epochs is 0"),
])
def test_train_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
