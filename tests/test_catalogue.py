"""Data sets as users have them: a UCF101-style tree with its split lists, HMDB51-style split
files, and a Kinetics-style manifest (segments of long and variable-frame-rate videos). The
videos are real, encoded with PyAV; their frames say their own number (tests/_videos.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _videos import encode_coded, read_codes

from vidtune.data import DataConfig, load_arrays, make_loaders
from vidtune.data.catalogue import manifest_catalogue, read_catalogue
from vidtune.data.split import SPLIT_CODES

CLASSES = ("ApplyEyeMakeup", "Biking", "HandstandPushups")


def video_frames(k: int) -> int:
    """Video k of a tree has 10 + k frames, so its last frame's number tells which it is."""
    return 10 + k


@pytest.fixture(scope="module")
def ucf(tmp_path_factory) -> Path:
    """UCF101's layout: UCF-101/<Class>/v_<Class>_g<group>_c01.avi, 4 groups a class, and
    ucfTrainTestlist/ with classInd.txt, trainlist01.txt (groups 2-4, with the class index)
    and testlist01.txt (group 1). The lists spell HandStandPushups as UCF101's own do."""
    base = tmp_path_factory.mktemp("ucf")
    lists = base / "ucfTrainTestlist"
    lists.mkdir()
    train, test, k = [], [], 0
    for c, name in enumerate(CLASSES, start=1):
        file_class = "HandStandPushups" if name == "HandstandPushups" else name
        for group in range(1, 5):
            rel = f"{name}/v_{file_class}_g{group:02d}_c01.avi"
            encode_coded(base / "UCF-101" / rel, video_frames(k), codec="mpeg4", size=(32, 24))
            k += 1
            listed = rel.replace(name, file_class, 1)
            (test if group == 1 else train).append(listed if group == 1 else f"{listed} {c}")
    (lists / "classInd.txt").write_text("".join(f"{c} {n}\n" for c, n in enumerate(CLASSES, 1)))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return base


def names(catalogue, split: str) -> list[str]:
    return [c.name for c in catalogue.clips if c.split == split]


def test_ucf101_lists_replace_the_random_split(ucf, tmp_path):
    root, lists = ucf / "UCF-101", ucf / "ucfTrainTestlist"
    both = f"{lists}/trainlist01.txt,{lists}/testlist01.txt"
    catalogue = read_catalogue(root, both)
    assert names(catalogue, "test") == [f"{c}/v_{c.replace('standP', 'StandP')}_g01_c01.avi"
                                        for c in CLASSES]
    assert len(names(catalogue, "train")) == 9 and not names(catalogue, "unused")
    # The test list alone: every other clip trains.
    alone = read_catalogue(root, f"{lists}/testlist01.txt")
    assert [c.split for c in alone.clips] == [c.split for c in catalogue.clips]

    data = DataConfig(source=str(root), split_file=both, frames=4, height=24, width=36,
                      cache_dir=str(tmp_path / "cache"))
    loaders = make_loaders(data, batch_size=4, progress=False)
    arrays = loaders.train.arrays
    # Which video each clip came from: its last frame's number is its frame count - 1.
    video_of = [read_codes(np.asarray(clip))[-1] - 9 for clip in arrays.clips]
    assert sorted(video_of[i] for i in loaders.val.indices) == [0, 4, 8]      # the g01 videos
    assert sorted(video_of[i] for i in loaders.train.indices) == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert arrays.labels[loaders.val.indices].tolist() == [0, 1, 2]


def test_a_new_split_list_reuses_the_cache(ucf, tmp_path):
    root, lists = ucf / "UCF-101", ucf / "ucfTrainTestlist"
    cache = tmp_path / "cache"
    first = load_arrays(DataConfig(source=str(root), frames=4, height=24, width=36,
                                   cache_dir=str(cache)), progress=False)
    assert first.splits is None
    (store,) = (cache / "folders").iterdir()
    mtime = (store / "manifest.json").stat().st_mtime_ns
    split = load_arrays(DataConfig(source=str(root), split_file=f"{lists}/testlist01.txt",
                                   frames=4, height=24, width=36, cache_dir=str(cache)),
                        progress=False)
    assert (store / "manifest.json").stat().st_mtime_ns == mtime
    assert list((cache / "folders").iterdir()) == [store]
    assert (split.splits == SPLIT_CODES["test"]).sum() == 3


def test_hmdb51_split_files(tmp_path):
    """HMDB51: <class>_test_split1.txt per class, 'video.avi N' with 1 train, 2 test, 0 out."""
    root, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    k = 0
    for name in ("brush_hair", "cartwheel"):
        lines = []
        for i, tag in enumerate([1, 1, 2, 0, 1]):
            video = f"{name}_clip{i}.avi"
            encode_coded(root / name / video, video_frames(k), codec="mpeg4", size=(32, 24))
            lines.append(f"{video} {tag} ")
            k += 1
        (splits / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")
        (splits / f"{name}_test_split2.txt").write_text("garbage that split1 never reads\n")
    catalogue = read_catalogue(root, f"{splits}/*_test_split1.txt")
    assert [c.split for c in catalogue.clips] == ["train", "train", "test", "unused", "train"] * 2
    data = DataConfig(source=str(root), split_file=f"{splits}/*_test_split1.txt", frames=4,
                      height=24, width=36, cache_dir=str(tmp_path / "cache"))
    loaders = make_loaders(data, batch_size=4, progress=False)
    assert len(loaders.train.indices) == 6 and len(loaders.val.indices) == 2
    with pytest.raises(ValueError, match=r"brush_hair_test_split2.txt:1: 'garbage that split1 "
                       r"never reads' is not 'video.avi N' with N 0, 1 or 2"):
        read_catalogue(root, f"{splits}/*_test_split2.txt")


def test_bad_split_lines_are_named_with_their_line_numbers(ucf, tmp_path):
    root = ucf / "UCF-101"
    lists = Path(shutil.copytree(ucf / "ucfTrainTestlist", tmp_path / "lists"))
    with open(lists / "testlist01.txt", "a") as f:
        f.write("Biking/v_Biking_g09_c01.avi\n")           # line 4: no such video
        f.write("Biking/v_Biking_g02_c01.avi\n")           # line 5: also in the train list
    with pytest.raises(ValueError) as info:
        read_catalogue(root, f"{lists}/trainlist01.txt,{lists}/testlist01.txt")
    message = str(info.value)
    assert message.startswith(f"split lists {lists}/trainlist01.txt,{lists}/testlist01.txt "
                              "have 2 bad line(s); fix them or the data:")
    assert "testlist01.txt:4: Biking/v_Biking_g09_c01.avi is not in " in message
    assert ("testlist01.txt:5: Biking/v_Biking_g02_c01.avi is test here but train at "
            "trainlist01.txt:4") in message

    (lists / "mylist.txt").write_text("Biking/v_Biking_g02_c01.avi\n")
    with pytest.raises(ValueError, match=r"mylist.txt does not say what it lists: its name must "
                       "contain 'train', 'test' or 'val'"):
        read_catalogue(root, f"{lists}/mylist.txt")
    with pytest.raises(ValueError, match=r"split file .*nope.txt does not exist"):
        read_catalogue(root, f"{lists}/nope.txt")
    with pytest.raises(ValueError, match=r"split file pattern .*\*_split9.txt' matches no file"):
        read_catalogue(root, f"{lists}/*_split9.txt")
    # A training list that leaves a class out: that label has no training clips.
    (lists / "trainlist02.txt").write_text("Biking/v_Biking_g02_c01.avi 2\n"
                                           "HandstandPushups/v_HandStandPushups_g02_c01.avi 3\n")
    with pytest.raises(ValueError, match=r"label 'ApplyEyeMakeup': no training clips: its 4 "
                       r"clip\(s\) are test/unused"):
        read_catalogue(root, f"{lists}/trainlist02.txt,{ucf}/ucfTrainTestlist/testlist01.txt")


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory) -> Path:
    """A Kinetics-style manifest over one long video (60 s at 25 fps, a keyframe every 250
    frames), a variable-frame-rate one and two short ones, in videos/ beside it."""
    base = tmp_path_factory.mktemp("kinetics")
    encode_coded(base / "videos" / "long.mp4", 1500, gop=250)
    vfr = [20 * i for i in range(20)] + [380 + 200 * i for i in range(1, 11)]   # ms
    encode_coded(base / "videos" / "vfr.mp4", 30, pts_ms=vfr)
    encode_coded(base / "videos" / "a b.mp4", 40)        # a space in the name
    encode_coded(base / "videos" / "short.webm", 30, codec="libvpx-vp9")
    (base / "train.csv").write_text(
        "label,path,split,start,end,youtube_id\n"           # any column order; extra columns
        "waving,videos/long.mp4,train,0,10,x1\n"
        "waving,videos/long.mp4,train,20,30,x1\n"
        "clapping,videos/long.mp4,train,30,40,x1\n"
        "clapping,videos/vfr.mp4,train,,,x2\n"
        "waving,videos/long.mp4,val,40,50,x1\n"
        '"clapping","videos/a b.mp4",val,0.4,1.2,x3\n'
        "waving,videos/short.webm,test,,,x4\n"
        "clapping,videos/long.mp4,test,50,60,x1\n")
    return base


def test_a_kinetics_style_manifest_with_segments(kinetics, tmp_path):
    manifest = kinetics / "train.csv"
    catalogue = manifest_catalogue(manifest)
    assert catalogue.class_names == ("clapping", "waving")
    assert [c.line for c in catalogue.clips] == list(range(2, 10))
    data = DataConfig(source=str(manifest), frames=5, height=24, width=36,
                      cache_dir=str(tmp_path / "cache"))
    loaders = make_loaders(data, batch_size=4, progress=False)
    arrays = loaders.train.arrays
    codes = [read_codes(np.asarray(clip)) for clip in arrays.clips]
    # Segments at 25 fps: [0, 10) s holds frames 0..249, [20, 30) s 500..749, and so on.
    assert codes[0] == list(np.rint(np.linspace(0, 249, 5)))
    assert codes[1] == list(np.rint(np.linspace(500, 749, 5)))
    assert codes[4] == list(np.rint(np.linspace(1000, 1249, 5)))
    assert codes[5] == [10, 15, 19, 24, 29]   # [0.4, 1.2) s at 25 fps; 19.5 ties to the earlier
    assert codes[3] == [0, 20, 23, 26, 29]   # uniform in time (0.595 s: frame 20), not in index
    assert list(loaders.train.indices) == [0, 1, 2, 3]
    assert list(loaders.val.indices) == [4, 5]                        # val rows; test held out
    assert arrays.splits.tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert arrays.labels.tolist() == [1, 1, 0, 0, 1, 0, 1, 0]


def test_changing_a_segment_rebuilds_the_cache(kinetics, tmp_path):
    manifest = Path(shutil.copy(kinetics / "train.csv", tmp_path / "m.csv"))
    os.symlink(kinetics / "videos", tmp_path / "videos")
    cache = tmp_path / "cache"
    data = DataConfig(source=str(manifest), frames=3, height=24, width=36, cache_dir=str(cache))
    before = load_arrays(data, progress=False)
    manifest.write_text(manifest.read_text().replace("long.mp4,train,0,10", "long.mp4,train,0,2"))
    after = load_arrays(data, progress=False)
    assert len(list((cache / "manifests").iterdir())) == 2
    assert read_codes(np.asarray(before.clips[0]))[-1] == 249
    assert read_codes(np.asarray(after.clips[0]))[-1] == 49


def test_bad_manifest_rows_are_named_with_their_line_numbers(kinetics, tmp_path):
    manifest = tmp_path / "bad.csv"
    os.symlink(kinetics / "videos", tmp_path / "videos")
    manifest.write_text(
        "path,label,split,start,end\n"
        "videos/long.mp4,waving,train,0,10\n"
        "videos/missing.mp4,waving,train,,\n"           # 3: a missing file
        "videos/long.mp4,waving,validation,10,20\n"     # 4: an unknown split
        "videos/long.mp4,waving,train,30,30\n"          # 5: start >= end
        "videos/long.mp4,waving,train,ten,20\n"         # 6: not a number
        "videos/long.mp4,waving,train,0,10\n"           # 7: repeats line 2
        "videos/vfr.mp4,wav\ting,train,,\n"             # 8: not a valid label
        "videos/vfr.mp4,waving,train,,,extra\n"         # 9: too many fields
        "\n"
        "videos,waving,train,,\n"                       # 11: a folder
        ",waving,train,,\n")                            # 12: no path
    with pytest.raises(ValueError) as info:
        manifest_catalogue(manifest)
    lines = str(info.value).splitlines()
    assert lines[0] == f"manifest {manifest} has 9 bad row(s); fix or remove them:"
    assert lines[1:] == [
        "  bad.csv:3: no such file videos/missing.mp4",
        "  bad.csv:4: unknown split 'validation'; use train, val, test",
        "  bad.csv:5: start 30 s is not before end 30 s",
        "  bad.csv:6: start 'ten' is not a number of seconds",
        "  bad.csv:7: repeats line 2 (the same file and segment)",
        "  bad.csv:8: label 'wav\\ting' contains control characters",
        "  bad.csv:9: 6 fields, but the header has 5 (a comma inside a name? quote the field)",
        "  bad.csv:11: videos is a folder, not a video file",
        "  bad.csv:12: no path",
    ]
    # A label whose clips are all val or test.
    manifest.write_text("path,label,split\nvideos/long.mp4,waving,train\n"
                        "videos/vfr.mp4,clapping,val\nvideos/short.webm,clapping,test\n")
    with pytest.raises(ValueError, match=r"label 'clapping': no training clips: its 2 clip\(s\) "
                       r"are test/val \(lines 3, 4\)"):
        manifest_catalogue(manifest)
    manifest.write_text("file,class\nvideos/long.mp4,waving\n")
    with pytest.raises(ValueError, match="needs a header with the columns path and label \\(its "
                       "first line is 'file,class'\\); add the line path,label"):
        manifest_catalogue(manifest)
    with pytest.raises(ValueError, match="manifest .*nope.csv does not exist"):
        manifest_catalogue(tmp_path / "nope.csv")
    manifest.write_bytes(b"path,label\nvideos/long.mp4,caf\xe9\n")
    with pytest.raises(ValueError, match=r"is not UTF-8 text \(line 2\)"):
        manifest_catalogue(manifest)


def test_a_manifest_without_a_split_column_splits_at_random(kinetics, tmp_path):
    manifest = tmp_path / "m.csv"
    os.symlink(kinetics / "videos", tmp_path / "videos")
    rows = [f"videos/long.mp4,{'ab'[i % 2]},{10 * i},{10 * i + 5}" for i in range(6)]
    manifest.write_text("path,label,start,end\n" + "\n".join(rows) + "\n")
    arrays = load_arrays(DataConfig(source=str(manifest), frames=3, height=24, width=36,
                                    cache_dir=str(tmp_path / "cache")), progress=False)
    assert arrays.splits is None and arrays.class_names == ("a", "b")
    loaders = make_loaders(DataConfig(source=str(manifest), frames=3, height=24, width=36,
                                      cache_dir=str(tmp_path / "cache")), 2, progress=False)
    assert len(loaders.train.indices) == 4 and len(loaders.val.indices) == 2
