"""retrain / evaluate / predict end to end, from a real tiny search (Optuna TPE + Ray Tune + ASHA).

One module-scoped search (4 trials of the tiny space, 3 epochs, 100 clips of 4x16x16) and one
retrain of its best trial feed every test here.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

from vidtune.data import CLASS_NAMES, DataConfig, load_arrays, make_loaders, to_float
from vidtune.data.video_folder import decode_video
from vidtune.trainable.best.artifact import EXPORTED, load_artifact, load_exported
from vidtune.trainable.tune.experiment import load_experiment

pytestmark = pytest.mark.slow

MAX_EPOCHS = 3


@pytest.fixture(scope="module", autouse=True)
def cpu_only():
    """Trials and retraining on CPU, where training is deterministic (also on a GPU machine)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUDA_VISIBLE_DEVICES", "")   # inherited by the Ray workers started below
        mp.setattr(torch.cuda, "is_available", lambda: False)
        yield


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory, shared_ray) -> str:
    """The experiment folder of a finished tiny search."""
    import ray

    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.driver import run_search

    tmp = tmp_path_factory.mktemp("retrain")
    # Its own Ray, whose workers inherit cpu_only's CUDA_VISIBLE_DEVICES.
    shared_ray.own(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
                   log_to_driver=False)
    try:
        outcome = run_search(SearchConfig(
            space="tiny", num_samples=4, max_epochs=MAX_EPOCHS, grace_period=1,
            reduction_factor=2, num_cpus=2, results_dir=str(tmp), name="s",
            # fp32: bf16's sums follow the thread count, which idle-core sharing changes
            # mid-trial, so a bf16 retrain does not repeat its trial (0.20 against 0.25 in CI).
            precision="fp32",
            data=DataConfig(num_clips=100, frames=4, height=16, width=16, noise=0.2,
                            cache_dir=str(tmp / "cache"))))
    finally:
        ray.shutdown()
    return outcome.experiment_path


@pytest.fixture(scope="module")
def retrained(search: str) -> tuple[Path, str]:
    """`vidtune retrain RESULTS_DIR` with its defaults: (model folder, what it printed)."""
    from vidtune.scripts.retrain import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        main([search], prog="vidtune retrain")
    return Path(search) / "best_model", stdout.getvalue()


@pytest.fixture(scope="module")
def expected_pick(search: str, read_progress, read_snapshot) -> pd.Series:
    """The retrain rule worked out here from what the trials wrote, not by best_trial().

    Progress from each trial's progress.csv; creation order and Ray's ERROR status from Ray's
    newest experiment snapshot. Among the trials that neither errored nor diverged, those
    that trained the most epochs; of them the best final val_acc; a tie to the earlier trial.
    With 20 val clips, accuracies step by 0.05, so ties do happen.
    """
    progress, states = read_progress(search), read_snapshot(search)
    rows = [{"trial_id": t["trial_id"], "order": order, "config": t["config"],
             "epochs": int(progress[t["trial_id"]]["epoch"].max()),
             "final_val_acc": float(progress[t["trial_id"]]["val_acc"].iloc[-1])}
            for order, t in enumerate(states)
            if t["status"] != "ERROR" and t["trial_id"] in progress
            and not progress[t["trial_id"]]["diverged"].any()]
    table = pd.DataFrame(rows)
    assert len(states) == 4 and len(table) > 0, (states, table)
    top = table[table["epochs"] == table["epochs"].max()]
    return top.sort_values(["final_val_acc", "order"], ascending=[False, True]).iloc[0]


def _one_line_error(capsys, *texts: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip()
    assert "\n" not in line, line
    for text in texts:
        assert text in line, line


def test_retrain_picks_by_the_rule_and_reproduces_the_trial(search, retrained, expected_pick):
    folder, printed = retrained
    assert expected_pick["epochs"] == MAX_EPOCHS   # the full budget: ASHA let it run to the end
    assert f"best trial {expected_pick['trial_id']}" in printed
    assert "rule: among the trials that trained the largest number of epochs" in printed
    assert f"params: {json.dumps(expected_pick['config'], sort_keys=True)}" in printed
    reported = expected_pick["final_val_acc"]    # its val_acc at MAX_EPOCHS, from progress.csv

    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs"] == MAX_EPOCHS
    assert abs(metrics["val_acc"] - reported) <= 0.01, (metrics["val_acc"], reported)
    assert f"final val_acc {metrics['val_acc']:.4f} (the trial reported {reported:.4f}" in printed
    assert f"model saved to {folder}" in printed


def test_model_folder_holds_weights_config_and_an_exported_program(search, retrained,
                                                                   expected_pick):
    folder, _ = retrained
    weights = torch.load(folder / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    config = json.loads((folder / "config.json").read_text())
    experiment = load_experiment(search)
    source = config["source_trial"]
    assert source["trial_id"] == expected_pick["trial_id"] and source["epochs"] == MAX_EPOCHS
    assert source["params"] == expected_pick["config"]
    assert source["val_acc"] == pytest.approx(expected_pick["final_val_acc"])
    assert config["class_names"] == list(CLASS_NAMES)
    assert config["preprocessing"]["frames"] == 4 and config["preprocessing"]["height"] == 16
    assert config["data"] == asdict(experiment.config.data)
    assert config["train"]["epochs"] == MAX_EPOCHS and config["train"]["seed"] == 0
    assert config["train_on"] == "train" and config["exported_program"] == EXPORTED

    model, _ = load_artifact(folder)
    program = load_exported(folder)
    loaders = make_loaders(DataConfig(**config["data"]), batch_size=7, progress=False)
    clips, _ = next(iter(loaders.val))   # (7, T, C, H, W) real clips
    with torch.no_grad():
        torch.testing.assert_close(program(clips), model(clips), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(program(clips[:1]), model(clips[:1]), atol=1e-5, rtol=1e-5)
    # Reloading the exported program needs nothing from this package but torch.
    reloaded = torch.export.load(folder / EXPORTED).module()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(clips), model(clips), atol=1e-5, rtol=1e-5)


def test_evaluate_prints_accuracy_per_class_and_writes_the_confusion_png(retrained, capsys):
    from vidtune.scripts.evaluate import main

    folder, _ = retrained
    metrics = json.loads((folder / "metrics.json").read_text())
    main([str(folder)], prog="vidtune evaluate")
    out = capsys.readouterr().out
    assert f"val_acc {metrics['val_acc']:.4f}" in out and "(20 clips of synthetic)" in out
    assert "per-class accuracy:" in out and "move_right" in out and "green_to_red" in out
    assert "not a held-out" not in out
    png = folder / "confusion.png"
    assert f"confusion matrix: {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    other = folder.parent / "cm.png"
    main([str(folder), "--data", "synthetic", "--split", "all", "--confusion-png", str(other)])
    out = capsys.readouterr().out
    assert "acc (all clips)" in out and "(100 clips of synthetic)" in out
    assert "not a held-out accuracy" in out and other.is_file()


def _encode(path: Path, clip: np.ndarray, lossless: bool) -> None:
    """(T, H, W, 3) uint8 -> a video file of T frames: H.264 in RGB at crf 0, else MPEG-4."""
    with av.open(str(path), "w") as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=8)
            stream.pix_fmt, stream.options = "rgb24", {"crf": "0"}
        else:   # MPEG-4 part 2 is built into every FFmpeg
            stream = container.add_stream("mpeg4", rate=8)
            stream.pix_fmt, stream.options = "yuv420p", {"qscale": "1"}
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_predict_top_k_from_video_files_and_reports_unreadable_ones(retrained, tmp_path, capsys,
                                                                   codec_available):
    from vidtune.scripts.predict import main

    folder, _ = retrained
    model, config = load_artifact(folder)
    data = DataConfig(**config["data"])
    arrays = load_arrays(data, progress=False)
    val = make_loaders(data, batch_size=8, progress=False).val.indices[:4]
    lossless = codec_available("libx264rgb", "predict is checked on lossy MPEG-4 files, "
                                             "probabilities within 0.05 instead of equal")
    videos = []
    for i in val:   # benchmark clips the model never trained on, as mp4 files
        videos.append(tmp_path / f"clip{i}.mp4")
        _encode(videos[-1], np.asarray(arrays.clips[i]), lossless)
    bad = tmp_path / "broken video.mp4"
    bad.write_bytes(videos[0].read_bytes()[:150])

    main([str(folder), *map(str, videos), "--top-k", "2"], prog="vidtune predict")
    out = capsys.readouterr().out
    for i, video in zip(val, videos, strict=True):
        block = out.split(f"{video}\n", 1)[1].split("\n")[:2]
        assert block[0].startswith("  1. ") and block[1].startswith("  2. ")
        # Exactly decode_video + to_float with the model's clip size.
        clip = decode_video(video, data.frames, data.height, data.width)
        with torch.no_grad():
            probs = model(to_float(torch.from_numpy(clip)[None])).softmax(-1)[0]
            direct = model(to_float(torch.from_numpy(np.array(arrays.clips[i]))[None])).softmax(-1)[0]
        top = probs.topk(2)
        for line, p, j in zip(block, top.values, top.indices, strict=True):
            assert line.split()[1:] == [config["class_names"][j], f"{p:.3f}"]
        # The file holds the benchmark clip: same probabilities as the in-memory clip.
        if lossless:
            np.testing.assert_array_equal(clip, arrays.clips[i])
        torch.testing.assert_close(probs, direct, atol=1e-6 if lossless else 0.05, rtol=0)

    with pytest.raises(SystemExit) as info:
        main([str(folder), str(bad), str(videos[1]), str(tmp_path / "missing.mp4")])
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert f"{videos[1]}\n  1. " in captured.out
    assert f"error: cannot read {bad}: decoding failed" in captured.err
    assert f"error: cannot read {tmp_path / 'missing.mp4'}: cannot read file" in captured.err
    assert "2 of 3 videos could not be read" in captured.err and "Traceback" not in captured.err


def test_retrain_on_train_plus_val_says_val_is_not_held_out(search, tmp_path, capsys):
    from vidtune.scripts.retrain import main

    out = tmp_path / "all"
    main([search, "--train-on", "train+val", "--epochs", "1", "--seed", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "on all clips (train + val)" in printed
    assert "NOT a held-out number" in printed
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["train_on"] == "train+val" and config["train"]["seed"] == 3
    assert config["train"]["epochs"] == 1 and metrics["val_held_out"] is False
    assert (out / EXPORTED).is_file()


def test_bad_results_folders_give_one_line_errors(search, tmp_path, capsys):
    from vidtune.scripts.retrain import main

    def fails(argv, *texts):
        with pytest.raises(SystemExit) as info:
            main(argv, prog="vidtune retrain")
        assert info.value.code == 2
        _one_line_error(capsys, "vidtune retrain: error:", *texts)

    fails([str(tmp_path / "nope")], "does not exist")
    (tmp_path / "plain").mkdir()
    fails([str(tmp_path / "plain")], "not a vidtune results folder (no vidtune.json)")
    only_config = tmp_path / "started"
    only_config.mkdir()
    shutil.copy(Path(search) / "vidtune.json", only_config / "vidtune.json")
    fails([str(only_config)], "holds no Ray Tune experiment state")
    # A search whose trials never reported: Ray's state is there, no trial has a result.
    silent = Path(shutil.copytree(search, tmp_path / "silent"))
    shutil.rmtree(silent / "best_model", ignore_errors=True)
    for trial in silent.glob("trial_*"):
        (trial / "progress.csv").write_text("")
    fails([str(silent)], "no trial finished an epoch yet")
    fails([search, "--epochs", "0"], "epochs is 0")


def test_missing_model_and_bad_arguments_give_one_line_errors(tmp_path, capsys):
    from vidtune.scripts.evaluate import main as evaluate
    from vidtune.scripts.predict import main as predict

    for main, argv in [(evaluate, [str(tmp_path / "none")]),
                       (predict, [str(tmp_path / "none"), "v.mp4"])]:
        with pytest.raises(SystemExit) as info:
            main(argv, prog="vidtune x")
        assert info.value.code == 2
        _one_line_error(capsys, "vidtune x: error: model folder", "does not exist")
    (tmp_path / "half").mkdir()
    with pytest.raises(SystemExit):
        predict([str(tmp_path / "half"), "v.mp4"], prog="vidtune predict")
    _one_line_error(capsys, "is not a vidtune model folder: missing weights.pt, config.json")


def test_predict_rejects_top_k_below_one(retrained, tmp_path, capsys):
    from vidtune.scripts.predict import main

    with pytest.raises(SystemExit) as info:
        main([str(retrained[0]), str(tmp_path / "v.mp4"), "--top-k", "0"], prog="vidtune predict")
    assert info.value.code == 2
    _one_line_error(capsys, "top_k is 0")
