"""The files a resume reads, checked before Ray starts: a damaged one gets one line that names
the file, what is wrong and what to do; one that can be rebuilt from the others is set aside
and rebuilt, saying so. It knows Ray Tune 2.60's file names, so it lives in the Ray layer.

  vidtune.json          the settings (SearchConfig.load names the file and the fix)
  budget.jsonl          time spent of --time-budget: resume with a new --time-budget
  asha_decisions.jsonl  a log, not needed to resume: a half-written last line is dropped;
                        other damage sets the log aside (the rungs are in Ray's state)
  optuna.db             the mirror: set aside and rebuilt from the trials (optuna_mirror.py)
  experiment_state-*.json, tuner.pkl, searcher-state-*.pkl, callback-states-*.pkl,
  search_gen_state-*.json (a pickle)  Ray's state of the experiment: cannot be rebuilt
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from vidtune.trainable.core.storage import filesystem, is_uri
from vidtune.trainable.tune.asha import DECISIONS_FILE
from vidtune.trainable.tune.budget import BUDGET_FILE
from vidtune.trainable.tune.experiment import damaged_state

DB_FILE = "optuna.db"   # optuna_mirror.DB_FILE, which imports Ray
RAY_JSON = (("experiment_state-", ".json"),)
# search_gen_state-*.json is a pickle too (SearchGenerator.save_to_dir), despite its name.
RAY_PICKLES = (("searcher-state-", ".pkl"), ("callback-states-", ".pkl"),
               ("search_gen_state-", ".json"))


def _names(folder: str) -> list[str]:
    if not is_uri(folder):
        return sorted(p.name for p in Path(folder).iterdir())
    import pyarrow.fs

    fs, base = filesystem(folder)
    return sorted(i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(base)))


def _read(folder: str, name: str) -> bytes | None:
    try:
        if not is_uri(folder):
            return (Path(folder) / name).read_bytes()
        fs, base = filesystem(folder)
        with fs.open_input_stream(f"{base.rstrip('/')}/{name}") as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def _write(folder: str, name: str, data: bytes) -> None:
    if not is_uri(folder):
        (Path(folder) / name).write_bytes(data)
        return
    fs, base = filesystem(folder)
    with fs.open_output_stream(f"{base.rstrip('/')}/{name}") as f:
        f.write(data)


def _remove(folder: str, name: str) -> None:
    if not is_uri(folder):
        (Path(folder) / name).unlink(missing_ok=True)
        return
    fs, base = filesystem(folder)
    fs.delete_file(f"{base.rstrip('/')}/{name}")


def _set_aside(folder: str, name: str, data: bytes) -> str:
    """Keep a damaged file under a new name (nothing is deleted); returns that name."""
    aside = f"{name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    _write(folder, aside, data)
    _remove(folder, name)
    return aside


def newest(names: list[str], prefix: str, suffix: str) -> str | None:
    """The newest file of a Ray session kind (names sort by their timestamp)."""
    matching = [n for n in names if n.startswith(prefix) and n.endswith(suffix)]
    return matching[-1] if matching else None


def check_budget(folder: str, data: bytes | None) -> None:
    if data is None:
        return
    try:
        d = json.loads(data)
        float(d["total_s"]), float(d["spent_s"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{folder}/{BUDGET_FILE} is damaged ({exc}): it records how much of "
                         "the time budget the search has spent; give the resume a new budget, "
                         f"e.g. vidtune resume {folder} --time-budget 10m (the file is then "
                         "written again)") from None


def check_decisions(folder: str, data: bytes | None) -> str | None:
    """Repair or set aside a damaged ASHA log; returns a note, or None if it is sound."""
    if not data:
        return None
    complete = data[: data.rfind(b"\n") + 1]
    for number, line in enumerate(complete.splitlines(), start=1):
        try:
            json.loads(line)
        except ValueError:
            aside = _set_aside(folder, DECISIONS_FILE, data)
            return (f"{folder}/{DECISIONS_FILE} line {number} is damaged (not JSON): kept as "
                    f"{aside}, a new log starts; ASHA's rungs themselves are in Ray's state")
    if complete != data:   # a driver killed while it appended a line
        _write(folder, DECISIONS_FILE, complete)
        return (f"{folder}/{DECISIONS_FILE}: dropped a half-written last line (the driver was "
                "killed while writing it); ASHA's rungs are in Ray's state")
    return None


def sqlite_problem(data: bytes) -> str | None:
    """What is wrong with an SQLite Optuna study, or None if it opens and is sound."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / DB_FILE
        path.write_bytes(data)
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                (check,) = db.execute("PRAGMA quick_check").fetchone()
                if check != "ok":
                    return f"SQLite: {check}"
                db.execute("SELECT study_name FROM studies").fetchall()
        except sqlite3.Error as exc:
            return f"SQLite: {exc}"
    return None


def check_optuna_db(folder: str, data: bytes | None) -> str | None:
    """Set a damaged or missing optuna.db aside: the mirror rebuilds it from the trials."""
    if data is None:
        return (f"{folder}/{DB_FILE} is missing: it is rebuilt from the trials as the search "
                "resumes")
    problem = sqlite_problem(data)
    if problem is None:
        return None
    aside = _set_aside(folder, DB_FILE, data)
    return (f"{folder}/{DB_FILE} is damaged ({problem}): kept as {aside}, and rebuilt from the "
            "trials as the search resumes")


def check_ray_state(folder: str, names: list[str]) -> None:
    for prefix, suffix in RAY_JSON:
        name = newest(names, prefix, suffix)
        data = _read(folder, name) if name else None
        if data is None:
            continue
        try:
            json.loads(data)
        except ValueError as exc:
            raise ValueError(damaged_state(folder, str(name), exc)) from None
    pickles = [newest(names, prefix, suffix) for prefix, suffix in RAY_PICKLES]
    for name in ["tuner.pkl", *[p for p in pickles if p]]:
        data = _read(folder, name)
        if data is None:
            continue
        # A pickle opens with PROTO (0x80) and ends with STOP ("."): a cut one lacks its end.
        if not data.startswith(b"\x80") or not data.endswith(b"."):
            raise ValueError(damaged_state(folder, name, ValueError(
                f"a pickle of {len(data)} bytes that is cut short or not a pickle")))


def check_resume_files(folder: str, budget: bool = True, optuna_in_folder: bool = True
                       ) -> list[str]:
    """Check what a resume of `folder` reads (budget.jsonl only if `budget`: a resume given
    a new --time-budget does not read it; optuna.db only if the study lives in the folder).
    Returns the notes of what was repaired; ValueError naming the file and the fix for
    damage that cannot be repaired."""
    names = _names(folder)
    check_ray_state(folder, names)
    if budget:
        check_budget(folder, _read(folder, BUDGET_FILE))
    notes = [check_decisions(folder, _read(folder, DECISIONS_FILE))]
    if optuna_in_folder:
        notes.append(check_optuna_db(folder, _read(folder, DB_FILE)))
    return [n for n in notes if n]
