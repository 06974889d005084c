"""Millisecond tests of the search-efficiency rules: thread shares, durations, checkpoint rank
and the checkpoint keeper (on real folders)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest

from vidtune.trainable.core.checkpoint import save_state
from vidtune.trainable.core.search_config import SearchConfig, format_duration, parse_duration
from vidtune.trainable.tune.budget import Budget, time_to_first_rung
from vidtune.trainable.tune.retention import CheckpointKeeper, rank_key
from vidtune.trainable.tune.threads import share_cpus


@pytest.mark.parametrize("text,seconds", [
    ("15m", 900), ("90s", 90), ("1h30m", 5400), ("2h", 7200), ("300", 300), ("1.5h", 5400),
    ("1h2m3s", 3723), (" 4m ", 240),
])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "15x", "1h 30m", "5 10", "-5m", "1h1h1", "15mm"])
def test_bad_durations_name_the_text_and_the_form(text):
    with pytest.raises(ValueError, match=r"duration .* is not understood; write e\.g\. 15m"):
        parse_duration(text)


@pytest.mark.parametrize("seconds,text", [(900, "15m"), (5400, "1h30m"), (75, "1m15s"), (0, "0s")])
def test_durations_format(seconds, text):
    assert format_duration(seconds) == text and parse_duration(text) == seconds


def test_num_samples_zero_needs_a_budget():
    with pytest.raises(ValueError, match="0 \\(no cap\\) together with --time-budget"):
        SearchConfig(num_samples=0)
    assert SearchConfig(num_samples=0, time_budget_s=60).num_samples == 0
    with pytest.raises(ValueError, match="time_budget_s is -1"):
        SearchConfig(time_budget_s=-1)


def test_no_sharing_while_more_trials_come():
    running = {"a": ("n1", 1), "b": ("n1", 1)}
    assert share_cpus({"a": ("n1", 1)}, {"n1": 4}, more_coming=True) == {"a": 1}
    assert share_cpus(running, {"n1": 2}, more_coming=False) == {"a": 1, "b": 1}   # none idle


def test_idle_cpus_go_to_the_running_trials_of_their_node():
    # One trial left on a 2-core node: it takes both.
    assert share_cpus({"a": ("n1", 1)}, {"n1": 2}, more_coming=False) == {"a": 2}
    # 5 idle cores over 2 trials: the earlier trial (sorted id) takes the odd one.
    assert share_cpus({"b": ("n1", 1), "a": ("n1", 1)}, {"n1": 7}, more_coming=False) == {"a": 4, "b": 3}
    # Two nodes: each node's idle cores stay on that node.
    got = share_cpus({"a": ("n1", 2), "b": ("n2", 1)}, {"n1": 4, "n2": 8}, more_coming=False)
    assert got == {"a": 4, "b": 8}


def test_no_sharing_before_every_trial_has_a_node():
    assert share_cpus({"a": ("n1", 1), "b": (None, 1)}, {"n1": 8}, more_coming=False) == {"a": 1, "b": 1}


def _trial(epoch: int, total: float) -> SimpleNamespace:
    return SimpleNamespace(last_result={"epoch": epoch, "time_total_s": total})


def test_time_to_first_rung_is_the_median_scaled_to_the_grace_period():
    assert time_to_first_rung([], 1) is None
    assert time_to_first_rung([SimpleNamespace(last_result={})], 1) is None
    # 10 s for 2 epochs, 3 s for 1, 40 s for 4: per-epoch 5, 3, 10 -> at grace 2: 10, 6, 20
    assert time_to_first_rung([_trial(2, 10), _trial(1, 3), _trial(4, 40)], 2) == 10


def test_budget_counts_earlier_runs():
    b = Budget(100, spent_before_s=30)
    assert 69 < b.left() <= 70 and not b.closed and not b.ended
    assert Budget(0).left() == math.inf


def test_checkpoint_rank_follows_the_retrain_rule():
    rows = {"more epochs, lower acc": ({"epoch": 6, "val_acc": 0.7}, 3),
            "fewer epochs, higher acc": ({"epoch": 3, "val_acc": 0.9}, 0),
            "tie, earlier": ({"epoch": 6, "val_acc": 0.7}, 1),
            "diverged": ({"epoch": 6, "val_acc": 0.0, "diverged": 1}, 2)}
    ranked = sorted(rows, key=lambda k: rank_key(*rows[k]))
    assert ranked == ["tie, earlier", "more epochs, lower acc", "fewer epochs, higher acc", "diverged"]


def _keeper_trial(folder: Path, trial_id: str, epochs: int) -> SimpleNamespace:
    """A trial as the keeper reads it: id, last result, its folder in storage (Ray's path)."""
    for epoch in range(epochs):
        save_state(folder / f"checkpoint_{epoch:06d}", {"epoch": epoch + 1}, {"epoch": epoch + 1})
    return SimpleNamespace(trial_id=trial_id, path=str(folder), last_result={"epoch": epochs},
                           status="TERMINATED", storage=SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem()))


def test_a_running_trial_keeps_its_newest_two_checkpoints(tmp_path):
    keeper = CheckpointKeeper(keep=1)
    trial = _keeper_trial(tmp_path / "trial_a", "a", epochs=4)
    keeper.on_checkpoint(0, [trial], trial, checkpoint=None)
    assert sorted(p.name for p in (tmp_path / "trial_a").iterdir()) == ["checkpoint_000002", "checkpoint_000003"]
    keeper.on_checkpoint(0, [trial], trial, checkpoint=None)     # nothing more to drop
    assert len(list((tmp_path / "trial_a").iterdir())) == 2


def test_the_keeper_finds_a_trial_in_a_growing_list_without_scanning_it(tmp_path):
    keeper = CheckpointKeeper(keep=1)
    trials = [_keeper_trial(tmp_path / f"trial_{i}", str(i), epochs=1) for i in range(3)]
    assert keeper._place(trials[:2], "1") == 1 and keeper._place(trials[:2], "2") == 2
    assert keeper._place(trials, "2") == 2          # indexed once the list has grown
    # Finishing: the first enters the top 1; the second, with more epochs, pushes it out.
    keeper.on_trial_complete(0, trials, trials[0])
    trials[1].last_result = {"epoch": 5}
    keeper.on_trial_complete(0, trials, trials[1])
    # Deleted only once two snapshots (Tune asks for the keeper's state at each) have recorded
    # them as finished, at the step after the second.
    for _ in range(CheckpointKeeper.SNAPSHOTS_BEFORE_DELETE):
        keeper.on_step_begin(1, trials)
        assert len(list((tmp_path / "trial_0").iterdir())) == 1
        keeper.get_state()
    keeper.on_step_begin(1, trials)
    assert not list((tmp_path / "trial_0").iterdir()) and len(list((tmp_path / "trial_1").iterdir())) == 1


def test_a_pickled_keeper_carries_its_top_and_not_one_drivers_bookkeeping(tmp_path):
    """Tuner.restore builds the keeper from the pickled run config: its setting and its top come
    back; the index, the pending deletions (their trial objects belong to the old driver) and
    the first-step flag start afresh."""
    keeper = CheckpointKeeper(keep=2)
    trials = [_keeper_trial(tmp_path / f"trial_{i}", str(i), epochs=i + 1) for i in range(3)]
    keeper.on_step_begin(0, trials)
    for trial in trials:
        keeper.on_trial_complete(0, trials, trial)
    assert keeper._pending and keeper._index and keeper._looked
    back = pickle.loads(pickle.dumps(keeper))
    assert back.keep == 2 and back._top == keeper._top == [((-3.0, -0.0, 2), "2"), ((-2.0, -0.0, 1), "1")]
    assert back._pending == [] and back._index == {} and back._looked is False


def test_a_trial_pushed_out_of_the_top_before_the_snapshots_is_deleted_once(tmp_path, caplog):
    keeper = CheckpointKeeper(keep=1)
    trials = [_keeper_trial(tmp_path / f"trial_{i}", str(i), epochs=3) for i in range(2)]
    keeper.on_trial_complete(0, trials, trials[0])     # enters the top: older two queued
    trials[1].last_result = {"epoch": 5}
    keeper.on_trial_complete(0, trials, trials[1])     # pushes it out at once: its last one too
    for _ in range(CheckpointKeeper.SNAPSHOTS_BEFORE_DELETE):
        keeper.get_state()
    with caplog.at_level("WARNING", logger="vidtune.trainable.tune.retention"):
        keeper.on_step_begin(1, trials)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert not list((tmp_path / "trial_0").iterdir())
    assert [p.name for p in (tmp_path / "trial_1").iterdir()] == ["checkpoint_000002"]


def test_a_closed_gate_ends_the_run_once_the_last_trial_has_ended():
    """Tune waits for a next trial without stepping the callbacks when none runs, so the
    searcher itself ends a run whose gate is closed, once its last live trial has ended."""
    import signal

    from ray.tune.search import ConcurrencyLimiter, Searcher

    from vidtune.trainable.tune import budget as budget_mod

    class Fixed(Searcher):
        def suggest(self, trial_id):
            return {"x": 1}

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass

    stops: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda *_: stops.append(1))
    try:
        limiter = ConcurrencyLimiter(Fixed(metric="val_acc", mode="max"), max_concurrent=2)
        search = budget_mod.BudgetedSearch(limiter)
        b = Budget(60.0)
        budget_mod.set_current(b)
        assert limiter.suggest("t1") == {"x": 1}
        b.closed = True
        search.is_finished()
        assert not b.ended and stops == [], "a trial still runs"
        limiter.on_trial_complete("t1", {"val_acc": 0.5})
        assert search.is_finished() and b.ended and stops == [1]
        search.is_finished()
        assert stops == [1], "the stop is sent once"
    finally:
        budget_mod.set_current(None)
        signal.signal(signal.SIGUSR1, old)
