"""What a labelled set of clips must hold before a classifier can train on it.

check_clips() is run on the driver before Ray starts (trainable.core.preflight) and again
by make_loaders, so a trial, retrain and train fail with the same one-line messages. Each
names the data, the class and the fix.
"""

from __future__ import annotations

import numpy as np

from vidtune.data.config import DataConfig
from vidtune.data.split import SPLIT_CODES, given_split
from vidtune.data.synthetic import NUM_CLASSES

MIN_CLASSES = 2


def _classes_have(names: list[str]) -> str:
    """"class 'a' has" or "classes 'a', 'b' have"."""
    quoted = ", ".join(repr(n) for n in names)
    return f"class {quoted} has" if len(names) == 1 else f"classes {quoted} have"


def _add_clips(cfg: DataConfig, classes: list[str]) -> str:
    """How to give these classes more clips."""
    if cfg.is_synthetic:
        return f"raise --num-clips (now {cfg.num_clips}) to at least {2 * NUM_CLASSES}"
    folders = ", ".join(f"{cfg.source}/{name}/" for name in classes[:3])
    return f"add videos to {folders}{' ...' if len(classes) > 3 else ''}"


def check_clips(labels: np.ndarray, class_names: tuple[str, ...], cfg: DataConfig) -> None:
    """ValueError (one line) unless there are >= 2 classes and every class has >= 2 clips.

    Two clips are enough for the split: stratified_split gives every class with >= 2 clips at
    least one in training and one in validation, whatever --val-fraction is. With 1 clip a
    class would be missing from validation; with 0 (all its videos unreadable) from both.
    """
    where = "the synthetic benchmark" if cfg.is_synthetic else cfg.source
    readable = "" if cfg.is_synthetic else "readable "
    if len(class_names) < MIN_CLASSES:
        raise ValueError(
            f"{where} has {len(class_names)} class ({', '.join(map(repr, class_names))}), but a classifier "
            f"needs at least {MIN_CLASSES}; add a second class folder {where}/<class>/ with videos")
    counts = np.bincount(labels, minlength=len(class_names))  # (num_classes,)
    empty = [name for name, n in zip(class_names, counts, strict=True) if n == 0]
    if empty:
        raise ValueError(
            f"in {where}, {_classes_have(empty)} no {readable}clip"
            + ("" if cfg.is_synthetic else " (all its videos were skipped as unreadable, see the "
               "decode report)") + f"; {_add_clips(cfg, empty)}" + ("" if cfg.is_synthetic else
                                                                     " or fix the files"))
    single = [name for name, n in zip(class_names, counts, strict=True) if n == 1]
    if single:
        raise ValueError(
            f"in {where}, {_classes_have(single)} 1 {readable}clip, but {'needs' if len(single) == 1 else 'need'} at least 2 (one "
            f"for training, one for validation); {_add_clips(cfg, single)}")


def check_given_split(labels: np.ndarray, splits: np.ndarray, class_names: tuple[str, ...],
                      cfg: DataConfig) -> None:
    """ValueError (one line) unless, in the split the data gives, there are >= 2 classes, every
    class has a readable training clip and some clip validates. The manifest and split lists
    were checked before decoding (data.catalogue); this catches videos that did not decode."""
    where = cfg.source
    if len(class_names) < MIN_CLASSES:
        raise ValueError(
            f"{where} has {len(class_names)} class ({', '.join(map(repr, class_names))}), but a "
            f"classifier needs at least {MIN_CLASSES}; add clips of a second label")
    train = np.bincount(labels[splits == SPLIT_CODES["train"]], minlength=len(class_names))
    missing = [name for name, n in zip(class_names, train, strict=True) if n == 0]
    if missing:
        raise ValueError(
            f"in {where}, {_classes_have(missing)} no readable training clip (their videos were "
            "skipped as unreadable, see the decode report); fix those files or give those "
            "labels other training clips")
    if not len(given_split(splits)[1]):
        raise ValueError(
            f"in {where}, no readable clip is in the val or test split, so nothing validates; "
            "give some clips split val (or test), or drop the split to split at random")
