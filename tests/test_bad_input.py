"""Bad input is refused before Ray starts, in one line that names the value and the fix.

Fast rule tests first (the data rules, the clip-size rule against the real model, which
errors are retried), then the commands run as a user would, on real videos encoded with
PyAV and on real tmpfs mounts that are read-only or fill up.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import encode_video, in_process, load_folder, tmpfs, video_folder, vidtune

from vidtune.data import DataConfig, load_arrays, stratified_split
from vidtune.data.checks import check_clips
from vidtune.data.store import StoreWriteError, open_store
from vidtune.data.video_folder import scan_folder
from vidtune.search_spaces import SearchSpace
from vidtune.search_spaces import _registry as registry
from vidtune.trainable.core.config import ModelConfig, TrainConfig
from vidtune.trainable.core.failures import is_deterministic, last_error_line, one_line
from vidtune.trainable.core.model import VideoModel
from vidtune.trainable.core.preflight import check_space_fits_clips
from vidtune.trainable.core.search_config import SearchConfig

# -- the rules, in milliseconds ------------------------------------------------------------


def test_data_rules_name_the_folder_the_class_and_the_fix():
    cfg = DataConfig(source="/data/videos")
    check_clips(np.array([0, 0, 1, 1]), ("a", "b"), cfg)   # fine
    with pytest.raises(ValueError, match=r"^/data/videos has 1 class \('a'\), but a classifier "
                       r"needs at least 2; add a second class folder /data/videos/<class>/"):
        check_clips(np.array([0, 0, 0]), ("a",), cfg)
    with pytest.raises(ValueError, match=r"class 'c' has no readable clip .*add videos to "
                       r"/data/videos/c/ or fix the files$"):
        check_clips(np.array([0, 0, 1, 1]), ("a", "b", "c"), cfg)
    with pytest.raises(ValueError, match=r"class 'b' has 1 readable clip, but needs at least 2 "
                       r"\(one for training, one for validation\); add videos to /data/videos/b/$"):
        check_clips(np.array([0, 0, 1]), ("a", "b"), cfg)
    synthetic = DataConfig(num_clips=12)
    with pytest.raises(ValueError, match=r"classes .* have 1 clip, but need at least 2 .* raise "
                       r"--num-clips \(now 12\) to at least 20$"):
        check_clips(np.arange(12) % 10, tuple("abcdefghij"), synthetic)


def test_two_clips_per_class_always_reach_training_and_validation():
    """Why check_clips asks for 2 clips and no more: the split never leaves such a class out."""
    labels = np.repeat(np.arange(5), 2)   # (10,): 2 clips per class
    for val_fraction in (0.01, 0.2, 0.5, 0.99):
        for seed in range(5):
            train, val = stratified_split(labels, val_fraction, seed)
            assert set(labels[train]) == set(labels[val]) == set(range(5)), (val_fraction, seed)


def test_clip_size_rule_matches_the_real_model(monkeypatch):
    """n conv blocks take frames of 2**n pixels and fail on one pixel less (a shape error)."""
    for blocks in range(1, 5):
        model = VideoModel(ModelConfig(conv_widths=(4,) * blocks, lstm_hidden=4, num_classes=2,
                                       spatial_pool=1))
        side = 2**blocks
        assert model(torch.zeros(1, 2, 3, side, side)).shape == (1, 2)   # (B, num_classes)
        with pytest.raises(RuntimeError) as info:
            model(torch.zeros(1, 2, 3, side - 1, side))
        assert is_deterministic(info.value), info.value

    def deep_space(trial):
        trial.suggest_int("conv_blocks", 2, 4)
        trial.suggest_categorical("conv_base", [4])
        trial.suggest_float("lr", 1e-3, 1e-2, log=True)

    space = SearchSpace("deep-test", "", deep_space, {"conv_blocks": 2, "conv_base": 4, "lr": 3e-3})
    monkeypatch.setitem(registry._SPACES, "deep-test", space)
    small = SearchConfig(space="deep-test", data=DataConfig(height=8, width=12))
    with pytest.raises(ValueError, match=r"clips of 8x12 pixels .* too small for space 'deep-test': "
                       r"it samples up to 4 conv blocks.* >= 16; use --height 16 --width 16"):
        check_space_fits_clips(small)
    check_space_fits_clips(SearchConfig(space="deep-test", data=DataConfig(height=16, width=16)))
    for name in ("tiny", "default", "wide"):   # the built-in spaces fit the smallest clips
        check_space_fits_clips(SearchConfig(space=name, data=DataConfig(height=8, width=8)))


def test_deterministic_errors_are_told_from_transient_ones():
    caught = []
    for bad in (lambda: ModelConfig(num_classes=1), lambda: TrainConfig(lr=-1.0),
                lambda: torch.nn.Linear(4, 3)(torch.zeros(2, 5)),
                lambda: torch.zeros(6).view(4, -1),
                lambda: torch.nn.Conv2d(3, 4, 3)(torch.zeros(1, 2, 8, 8)),
                lambda: torch.nn.LSTM(4, 3)(torch.zeros(2, 3, 5))):
        with pytest.raises(Exception) as info:   # noqa: B017 - each raises its own kind
            bad()
        caught.append(info.value)
    assert all(is_deterministic(e) for e in caught), [one_line(e) for e in caught]
    assert one_line(caught[0]) == "ValueError: num_classes is 1, but must be >= 2"
    transient = [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                 RuntimeError("Unable to set up cluster storage with the following settings"),
                 OSError(5, "Input/output error"), ConnectionError("node lost")]
    assert not any(is_deterministic(e) for e in transient)


def test_last_error_line_of_a_ray_error_file():
    text = ("Failure # 1 (occurred at 2026-11-27_06-58-37)\n"
            "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=28929, ip=192.0.2.2, actor_id=7a)\n"
            '  File "/x/trainable/core/config.py", line 29, in __post_init__\n'
            '    raise ValueError(f"num_classes is {self.num_classes}, but must be >= 2")\n'
            "ValueError: num_classes is 1, but must be >= 2\n"
            "Failure # 2 (occurred at 2026-11-27_06-58-41)\n"
            "The actor died unexpectedly before finishing this task.\n"
            "\tclass_name: ImplicitFunc\n\tactor_id: 096e\n")
    assert last_error_line(text) == "The actor died unexpectedly before finishing this task."
    first = text.split("Failure # 2")[0]
    assert last_error_line(first) == "ValueError: num_classes is 1, but must be >= 2"


# -- the commands, refused before Ray starts ---------------------------------------------------
# In this process (cli.main, what the `vidtune` command runs), with no Ray up (no_ray), so that
# a started Ray shows; test_one_class_folder_is_refused_in_a_real_process runs one in a fresh
# interpreter, as a user does.


def refused(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, the error on one line holding every fragment, no traceback, Ray never started."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert "Traceback" not in proc.stderr and "Ray" not in proc.stderr, proc.stderr
    return errors[0]


SMALL = ("--space", "tiny", "--num-samples", "2", "--max-epochs", "1", "--frames", "4",
         "--height", "16", "--width", "16")


@pytest.fixture
def search(tmp_path: Path, capfd, no_ray) -> Callable[..., subprocess.CompletedProcess]:
    """search(*args): a small `vidtune search ARGS` in this process, into tmp_path."""
    import ray

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = in_process(capfd, "search", *SMALL, "--results-dir", str(tmp_path / "results"),
                          "--cache-dir", str(tmp_path / "cache"), *args)
        assert not ray.is_initialized(), "the refused search started Ray"
        return proc

    return run


@pytest.mark.slow
def test_one_class_folder_is_refused_in_a_real_process(tmp_path):
    root = video_folder(tmp_path / "videos", {"walking": 8})
    line = refused(vidtune("search", *SMALL, "--results-dir", str(tmp_path / "results"),
                           "--cache-dir", str(tmp_path / "cache"), "--data", str(root)),
                   f"{root} has 1 class ('walking'), but a classifier needs at least 2",
                   f"add a second class folder {root}/<class>/")
    assert line.startswith("vidtune search: error: ")
    assert not (tmp_path / "results").exists(), "a refused search leaves nothing behind"


def test_one_video_per_class_is_refused_before_ray(tmp_path, search):
    root = video_folder(tmp_path / "videos", {"cat": 1, "dog": 1})
    refused(search("--data", str(root)),
            f"in {root}, classes 'cat', 'dog' have 1 readable clip, but need at least 2 "
            "(one for training, one for validation)", f"add videos to {root}/cat/, {root}/dog/")


def test_a_class_of_unreadable_videos_is_refused_with_the_decode_report(tmp_path, search):
    root = video_folder(tmp_path / "videos", {"cat": 2})
    (root / "dog").mkdir()
    (root / "dog" / "zero.mp4").write_bytes(b"")
    (root / "dog" / "junk.avi").write_text("not a video")
    proc = search("--data", str(root))
    refused(proc, f"in {root}, these classes have no readable clip: dog (0)",
            "add videos to those classes or fix the unreadable files listed below")
    report = proc.stderr.split(": error: ")[1].splitlines()[1:]
    assert report[0] == "decoded 2 videos in 2 classes; skipped 2 unreadable files:"
    assert report[1].startswith("  dog/junk.avi: decoding failed")
    assert report[2] == "  dog/zero.mp4: empty file (0 bytes)"


def test_data_pointing_at_one_video_file_is_refused(tmp_path, search):
    video = tmp_path / "clip.mp4"
    encode_video(video)
    refused(search("--data", str(video)), f"data '{video}' is a file, but --data takes a "
            "folder root/<class>/<video files>", f"`vidtune predict MODEL {video}`")


def test_unwritable_results_and_cache_folders_are_refused(tmp_path, search):
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        refused(search("--results-dir", str(ro / "results")),
                f"results folder {ro / 'results'} is not writable (Read-only file system); "
                "choose another with --results-dir")
        refused(search("--cache-dir", str(ro / "cache")),
                f"cache folder {ro / 'cache'} is not writable (Read-only file system); point "
                "--cache-dir (or $VIDTUNE_CACHE) at a writable folder")
    file = tmp_path / "a-file"
    file.write_text("x")
    refused(search("--results-dir", str(file / "results")),
            f"results folder {file / 'results'} cannot be created: {file} is a file")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_a_disk_that_fills_while_the_cache_is_written(tmp_path):
    """On a 256 KiB tmpfs the store (600 KiB) cannot be written: the error names the fix and
    nothing is left; once there is room the same call builds the store completely."""
    synthetic = DataConfig(num_clips=200, frames=4, height=16, width=16)   # 200 x 3 KiB
    root = video_folder(tmp_path / "videos", {"cat": 3, "dog": 3})
    with tmpfs(tmp_path / "small", size="256k") as small:
        with pytest.raises(StoreWriteError, match=r"cannot write the clip cache .*No space left on "
                           r"device.*; free 1 MB there or point --cache-dir \(or \$VIDTUNE_CACHE\)"):
            load_arrays(DataConfig(**{**synthetic.__dict__, "cache_dir": str(small)}), progress=False)
        assert _files(small) == [], "a half-written store was left"
        with pytest.raises(StoreWriteError, match="No space left on device"):
            load_folder(root, 16, 64, 64, small, progress=False)   # 6 x 192 KiB
        assert _files(small) == []

        proc = vidtune("search", "--data", str(root), "--frames", "16", "--height", "64",
                       "--width", "64", "--cache-dir", str(small),
                       "--results-dir", str(tmp_path / "results"))
        refused(proc, "cannot write the clip cache", "No space left on device",
                "point --cache-dir (or $VIDTUNE_CACHE) at a writable disk with room")
        assert _files(small) == []

        subprocess.run(["mount", "-o", "remount,size=8m", str(small)], check=True)
        arrays, _ = load_folder(root, 16, 64, 64, small, progress=False)
        (store,) = (small / "folders").iterdir()
        reopened = open_store(store)
        assert reopened is not None and reopened.clips.shape == (6, 16, 64, 64, 3)
        np.testing.assert_array_equal(reopened.clips, arrays.clips)


def test_non_utf8_file_names_and_symlinked_class_folders(tmp_path, capfd):
    root = tmp_path / "videos"
    encode_video(os.fsencode(root / "cat") + b"/caf\xe9.avi")        # not UTF-8
    encode_video(root / "cat" / "plain.avi", frames=9)
    elsewhere = video_folder(tmp_path / "elsewhere", {"dog": 2})
    (root / "dog").symlink_to(elsewhere / "dog", target_is_directory=True)
    os.symlink(b"/nowhere/x.avi", os.fsencode(root / "cat") + b"/gone\xff.avi")   # a broken link

    arrays, report = load_folder(root, 4, 16, 16, tmp_path / "cache")
    assert arrays.class_names == ("cat", "dog") and len(arrays) == 4
    assert list(arrays.labels) == [0, 0, 1, 1]
    assert [reason for _, reason in report.skipped] == ["broken symbolic link (to /nowhere/x.avi)"]
    assert "  cat/gone\\xff.avi: broken symbolic link" in report.summary()
    assert "cat/gone\\xff.avi" in capfd.readouterr().err   # printed without an encoding error
    again, _ = load_folder(root, 4, 16, 16, tmp_path / "cache")   # from the cache
    np.testing.assert_array_equal(again.clips, arrays.clips)

    (root / "bird").symlink_to(tmp_path / "no-such-folder", target_is_directory=True)
    with pytest.raises(ValueError, match=r"class folder .*bird is a broken symbolic link \(to "
                       r".*no-such-folder\); fix the link or remove it"):
        scan_folder(root)
    (root / "bird").unlink()
    (root / "hound").symlink_to(elsewhere / "dog", target_is_directory=True)
    with pytest.raises(ValueError, match=r"class folders 'dog' and 'hound' .* are the same folder"):
        scan_folder(root)


@pytest.mark.parametrize("name,problem,suggestion", [
    (b"d\xe9j\xe0", "is not valid UTF-8", "d_j"),
    (b"cat\tdog", "contains control characters", "cat_dog"),
    (b"cat ", "starts or ends with whitespace", "cat"),
])
def test_class_folders_that_are_not_valid_labels(tmp_path, name, problem, suggestion):
    root = video_folder(tmp_path / "videos", {"fine": 2})
    folder = os.fsencode(root) + b"/" + name
    os.mkdir(folder)
    encode_video(folder + b"/a.avi")
    shown = os.fsdecode(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    with pytest.raises(ValueError, match=rf"class folder {json.dumps(shown)[1:-1]!r} in .* is not a "
                       rf"valid label: its name {problem}; rename the folder, e.g. to '{suggestion}'"):
        scan_folder(root)


def test_invalid_label_is_refused_by_the_command(tmp_path, search):
    root = video_folder(tmp_path / "videos", {"fine": 2, "cat\tdog": 2})
    refused(search("--data", str(root)), "is not a valid label: its name contains "
            "control characters; rename the folder, e.g. to 'cat_dog'")


@pytest.fixture
def model_folder(tmp_path) -> Path:
    from vidtune.trainable.best.artifact import save_artifact

    model = VideoModel(ModelConfig(conv_widths=(4, 8), lstm_hidden=8, num_classes=2, spatial_pool=2))
    return save_artifact(tmp_path / "model", model, TrainConfig(),
                         DataConfig(frames=4, height=16, width=16), ("cat", "dog"), {})


@pytest.mark.slow
def test_predict_with_weights_that_do_not_match_the_config(tmp_path, model_folder):
    video = tmp_path / "v.avi"
    encode_video(video)
    assert vidtune("predict", str(model_folder), str(video)).returncode == 0
    config = json.loads((model_folder / "config.json").read_text())
    config["model"]["lstm_hidden"] = 16
    (model_folder / "config.json").write_text(json.dumps(config))
    refused(vidtune("predict", str(model_folder), str(video)),
            f"{model_folder}/weights.pt does not match config.json", "first: size mismatch for lstm.",
            "copy both from one model folder, or save the model again with `vidtune retrain`")
    (model_folder / "weights.pt").write_bytes(b"not a torch file")
    refused(vidtune("predict", str(model_folder), str(video)),
            f"{model_folder}/weights.pt is not a readable weights file")
