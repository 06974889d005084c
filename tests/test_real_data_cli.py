"""The commands on a Kinetics-style manifest: train with augmentation and more stored frames,
evaluate over several windows and on the test split, predict, and a search of the 'video'
space that samples the encoder (local weights) and augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from _helpers import vidtune
from _videos import encode_coded

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Two classes told apart by their frames' numbers: 'low' videos show 0..23, 'high' ones
    start at 1000. Six train, two val and two test clips a class."""
    base = tmp_path_factory.mktemp("cli")
    rows = ["path,label,split"]
    for k in range(10):
        split = "train" if k < 6 else "val" if k < 8 else "test"
        for label, offset in (("low", 0), ("high", 1000)):
            name = f"videos/{label}{k}.mp4"
            encode_coded(base / name, 24, first=offset + 30 * k)
            rows.append(f"{name},{label},{split}")
    (base / "m.csv").write_text("\n".join(rows) + "\n")
    return base / "m.csv"


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_train_evaluate_and_predict_on_a_manifest(manifest, tmp_path):
    model = tmp_path / "model"
    data = ["--data", str(manifest), "--frames", "4", "--stored-frames", "8", "--height", "24",
            "--width", "36", "--cache-dir", str(tmp_path / "cache")]
    ok(vidtune("train", *data, "--augment", "--epochs", "2", "--conv-widths", "8,16",
               "--lstm-hidden", "16", "--batch-size", "4", "--out", str(model)))
    config = json.loads((model / "config.json").read_text())
    assert config["data"]["augment"] is True and config["preprocessing"]["stored_frames"] == 8
    out = ok(vidtune("evaluate", str(model), "--clips", "3", "--no-png"))
    assert out.startswith("val_acc ") and "(4 clips of " in out and "3 windows each" in out
    out = ok(vidtune("evaluate", str(model), "--split", "test", "--no-png"))
    assert out.startswith("test_acc ") and "(4 clips of " in out
    refused = vidtune("evaluate", str(model), "--clips", "9", "--no-png")
    assert refused.returncode == 2
    assert "clips is 9, but the cache keeps 8 frames per clip, so there are only 5 windows" in \
        refused.stderr
    out = ok(vidtune("predict", str(model), str(manifest.parent / "videos/high9.mp4")))
    assert out.splitlines()[1].split()[1] in ("low", "high")


def test_bad_manifest_rows_stop_the_search_before_ray(manifest, tmp_path):
    bad = manifest.parent / "bad.csv"
    bad.write_text("path,label,split\nvideos/low0.mp4,low,train\nvideos/nope.mp4,low,tran\n")
    proc = vidtune("search", "--data", str(bad), "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert f"manifest {bad} has 1 bad row(s); fix or remove them:\n  bad.csv:3: unknown split " \
           "'tran'; use train, val, test" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_a_search_samples_the_encoder_and_augmentation(manifest, tmp_path):
    weights = {}
    for name, make in (("resnet18", torchvision.models.resnet18),
                       ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small)):
        weights[name] = tmp_path / f"{name}.pth"
        torch.save(make(weights=None).state_dict(), weights[name])
    spec = ",".join(f"{k}={v}" for k, v in weights.items())
    out = ok(vidtune("search", "--data", str(manifest), "--space", "video", "--num-samples", "5",
                     "--max-epochs", "1", "--grace-period", "1", "--frames", "2",
                     "--stored-frames", "4", "--height", "32", "--width", "32",
                     "--encoder-weights", spec, "--batch-size", "8", "--num-cpus", "2",
                     "--cache-dir", str(tmp_path / "cache"), "--results-dir",
                     str(tmp_path / "results"), "--name", "v", timeout=900))
    assert "5 trials, 0 errored" in out
    params = [json.loads(p.read_text()) for p in (tmp_path / "results/v").glob("trial_*/params.json")]
    assert len(params) == 5 and all({"encoder", "augment"} <= set(p) for p in params)
    assert {p["encoder"] for p in params} - {"conv"}, "no trial tried a torchvision encoder"
    assert np.isin([p["augment"] for p in params], [True, False]).all()
    ok(vidtune("analyze", str(tmp_path / "results/v")))               # strings and booleans
    assert (tmp_path / "results/v/analysis/report.html").exists()
