"""Hand-damaged files of a results folder, in milliseconds: each gets one line naming the
file, what is wrong and what to do, or is repaired (optuna.db set aside and rebuilt, a
half-written ASHA line dropped), saying so. And the Ray lines that point the wrong way."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import optuna
import pytest

from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.tune.experiment import TrialRecord, _Folder, _progress, read_trial_records
from vidtune.trainable.tune.quiet import quiet_ray_hints
from vidtune.trainable.tune.resume_files import check_resume_files, sqlite_problem

STATE = "experiment_state-2026-12-03_13-00-00.json"


@pytest.fixture
def folder(tmp_path) -> Path:
    """A sound results folder as a resume reads it (the files' formats, not a real run)."""
    cfg = SearchConfig(space="tiny", results_dir=str(tmp_path), name="s").resolved()
    path = Path(cfg.experiment_path)
    path.mkdir()
    (path / "vidtune.json").write_text(json.dumps(cfg.to_json(), indent=2))
    (path / STATE).write_text(json.dumps({"trial_data": []}))
    (path / "tuner.pkl").write_bytes(pickle.dumps({"trainable": "x"}))
    (path / "searcher-state-2026-12-03_13-00-00.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    (path / "search_gen_state-2026-12-03_13-00-00.json").write_bytes(pickle.dumps({"a": 1}))
    (path / "budget.jsonl").write_text('{"total_s": 600.0, "spent_s": 12.5}\n')
    (path / "asha_decisions.jsonl").write_text('{"trial_id": "a", "action": "CONTINUE"}\n' * 2)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path / 'optuna.db'}")
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    return path


def only_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_sound_folder_passes_untouched(folder):
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert check_resume_files(str(folder)) == []
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_truncated_vidtune_json_names_the_file_and_the_fix(folder):
    text = (folder / "vidtune.json").read_text()
    (folder / "vidtune.json").write_text(text[:91])
    with pytest.raises(ValueError) as exc:
        SearchConfig.load(folder)
    line = only_line(exc)
    assert line.startswith(f"{folder}/vidtune.json is damaged (")
    assert "line " in line and "the search's settings" in line and "restore it from a backup" in line
    (folder / "vidtune.json").write_text(json.dumps({"not_a_field": 1}))
    with pytest.raises(ValueError, match="does not hold vidtune settings .*not_a_field"):
        SearchConfig.load(folder)


def test_damaged_budget_names_the_file_and_the_new_budget_fix_unless_one_is_given(folder):
    (folder / "budget.jsonl").write_text('{"total_s": 600.0, "spe')
    with pytest.raises(ValueError) as exc:
        check_resume_files(str(folder))
    assert only_line(exc).startswith(f"{folder}/budget.jsonl is damaged (")
    assert f"vidtune resume {folder} --time-budget 10m" in str(exc.value)
    assert check_resume_files(str(folder), budget=False) == []   # a new budget: not read


def test_half_written_asha_line_is_dropped_and_a_damaged_log_set_aside(folder):
    log = folder / "asha_decisions.jsonl"
    sound = log.read_text()
    log.write_text(sound + '{"trial_id": "b", "act')
    (note,) = check_resume_files(str(folder))
    assert "dropped a half-written last line" in note and log.read_text() == sound
    log.write_text(sound + "garbage\n" + sound)
    (note,) = check_resume_files(str(folder))
    assert "line 3 is damaged (not JSON)" in note and not log.exists()
    (aside,) = folder.glob("asha_decisions.jsonl.damaged-*")
    assert aside.read_text() == sound + "garbage\n" + sound and aside.name in note


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_damaged_or_missing_optuna_db_is_set_aside_and_rebuilt_saying_so(folder, damage):
    db = folder / "optuna.db"
    original = db.read_bytes()
    assert sqlite_problem(original) is None
    if damage == "missing":
        db.unlink()
    else:
        db.write_bytes(b"not a database at all" * 100 if damage == "garbage" else original[:5000])
    (note,) = check_resume_files(str(folder))
    assert "rebuilt from the trials as the search resumes" in note
    if damage != "missing":
        assert "is damaged (SQLite: " in note and not db.exists()
        (aside,) = folder.glob("optuna.db.damaged-*")
        assert aside.name in note
    assert check_resume_files(str(folder), optuna_in_folder=False) == []   # a database URL


@pytest.mark.parametrize("name", [STATE, "tuner.pkl", "searcher-state-2026-12-03_13-00-00.pkl",
                                  "search_gen_state-2026-12-03_13-00-00.json"])
def test_damaged_ray_state_names_the_file_and_cannot_be_rebuilt(folder, name):
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as exc:
        check_resume_files(str(folder))
    line = only_line(exc)
    assert line.startswith(f"{folder}/{name} is damaged (")
    assert "cannot be rebuilt" in line and f"--config {folder}/vidtune.json --name NEW" in line


def test_a_reader_gets_the_damaged_state_error_after_retries_and_whole_progress_lines(folder, monkeypatch):
    monkeypatch.setattr("vidtune.trainable.tune.experiment.STATE_RETRY_S", 0.0)
    (folder / STATE).write_text('{"trial_data": [["{\\"trial_id')
    with pytest.raises(ValueError, match=f"{STATE} is damaged"):
        read_trial_records(str(folder))
    (folder / "trial_a").mkdir()
    (folder / "trial_a" / "progress.csv").write_text("epoch,val_acc\n1,0.25\n2,0.5")   # 0.53 being written
    record = TrialRecord("a", "RUNNING", {}, {}, "trial_a", None)
    assert _progress(_Folder(str(folder)), record)["val_acc"].tolist() == [0.25]


def test_ray_lines_that_point_the_wrong_way_are_dropped_and_real_failures_kept(caplog):
    quiet_ray_hints()
    quiet_ray_hints()   # idempotent
    tune_log = logging.getLogger("ray.tune.tune")
    analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    with caplog.at_level(logging.WARNING):
        tune_log.warning("Experiment has been interrupted, but the most recent state was saved."
                         "\nResume experiment with: Tuner.restore(path=\"/r\", trainable=...)")
        analysis_log.warning("Failed to fetch metrics for 2 trial(s):\n- t1: FileNotFoundError("
                             "'Could not fetch metrics')\n- t2: FileNotFoundError('Could not')")
        tune_log.warning("Total run time: 3.00 seconds")
        analysis_log.warning("Failed to fetch metrics for 1 trial(s):\n- t3: PermissionError(13)")
    assert [r.getMessage() for r in caplog.records] == [
        "Total run time: 3.00 seconds",
        "Failed to fetch metrics for 1 trial(s):\n- t3: PermissionError(13)"]
