"""The progress line's rules and the MLflow status words, in milliseconds (no Ray run, no MLflow)."""

from __future__ import annotations

import math
import pickle
from types import SimpleNamespace

import pytest

from vidtune.trainable.core.results import TrialStatus
from vidtune.trainable.tune import budget, progress
from vidtune.trainable.tune.mlflow_logger import rung_of, status_text
from vidtune.trainable.tune.progress import BestSoFar, Progress, end_estimate, progress_of


def test_end_estimate_spreads_the_work_left_over_the_slots():
    # median trial 10 s, longest 30 s; the running trials lack 10-4 and, past the median,
    # 30-12; 3 left at 10 s each: (6 + 18 + 30) / 2
    assert end_estimate([8, 10, 30], [4, 12], left=3, slots=2) == pytest.approx(27.0)
    assert end_estimate([8, 10, 30], [40], left=0, slots=2) == 0.0   # past them all: any moment
    assert Progress(9, done=3, running=1, left=0, best=None, end_in_s=0.0).line().endswith(
        "| end: any moment")
    assert end_estimate([10], [], left=0, slots=4) == 0.0
    assert end_estimate([10], [2], left=4, slots=1, budget_left_s=20) == 20   # the budget bounds it


def test_end_estimate_before_any_trial_ended_or_without_a_cap_is_the_budget_or_nothing():
    assert end_estimate([], [3, 4], left=5, slots=2) is None
    assert end_estimate([], [3], left=5, slots=2, budget_left_s=60) == 60
    assert end_estimate([10, 10], [3], left=None, slots=2, budget_left_s=60) == 60
    assert end_estimate([10], [3], left=None, slots=2) is None


def test_progress_line_names_counts_best_budget_and_end():
    p = Progress(125, done=5, running=2, left=5, best=(0.865, "ab_00003", 4), budget_left_s=145,
                 end_in_s=110)
    line = p.line(now=0)
    assert line.startswith("[2m5s] trials: 5 done, 2 running, 5 left | best val_acc 0.8650 "
                           "(trial ab_00003, epoch 4) | budget 2m25s left | end in ~1m50s (")
    assert "\n" not in line
    bare = Progress(3, done=0, running=1, left=None, best=None).line()
    assert bare == "[3s] trials: 0 done, 1 running, left: as the budget allows | best val_acc: none yet"


def trial(trial_id: str, status: str, seconds: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status, last_result={"time_total_s": seconds})


def test_progress_of_counts_trials_left_under_a_cap_and_when_the_budget_closes():
    trials = [trial("a", "TERMINATED", 10), trial("b", "ERROR", 10), trial("c", "RUNNING", 4),
              trial("d", "PENDING")]
    p = progress_of(trials, num_samples=6, slots=2, elapsed_s=30)
    assert (p.done, p.running, p.left) == (2, 1, 3)          # d and the 2 not yet created
    assert p.end_in_s == pytest.approx((6 + 3 * 10) / 2)     # c lacks 6 s of the median 10
    b = budget.Budget(100.0)
    budget.set_current(b)
    try:
        b.closed = True                                       # no new trial may start: d only
        p = progress_of(trials, num_samples=0, slots=2, elapsed_s=30)
        assert p.left == 1 and p.budget_left_s <= 100
    finally:
        budget.set_current(None)


def test_best_so_far_is_the_best_epoch_of_any_trial_not_the_last_and_survives_a_resume():
    keeper = BestSoFar()
    keeper.setup()
    t = SimpleNamespace(trial_id="t1")
    for epoch, acc in enumerate([0.5, 0.865, 0.62], start=1):   # the falling curve
        keeper.on_trial_result(0, [], t, {"epoch": epoch, "val_acc": acc})
    keeper.on_trial_result(0, [], SimpleNamespace(trial_id="t2"), {"epoch": 1, "val_acc": math.nan})
    keeper.on_trial_result(0, [], SimpleNamespace(trial_id="t3"),
                           {"epoch": 2, "val_acc": 0.9, "diverged": 1})
    assert progress._best == (0.865, "t1", 2)
    state = keeper.get_state()
    progress._best = None                                     # a new driver process
    restored = pickle.loads(pickle.dumps(BestSoFar()))
    restored.set_state(state)
    restored.setup()
    assert progress._best == (0.865, "t1", 2)


@pytest.mark.parametrize(("epoch", "rung"), [(1, 1), (2, 1), (3, 2), (8, 2), (9, 3)])
def test_rung_of_an_asha_stop(epoch, rung):
    assert rung_of(epoch, grace_period=1, reduction_factor=3) == rung


def test_status_words_of_a_trial_run():
    assert status_text(TrialStatus.STOPPED, 3, 1, 3) == "stopped by ASHA at rung 2 (epoch 3)"
    assert status_text(TrialStatus.ERRORED, 0, 1, 3, "ValueError: lr is -1") == "errored: ValueError: lr is -1"
    assert status_text(TrialStatus.COMPLETED, 6, 1, 3) == "completed"


def test_verbose_table_puts_the_progress_line_first_and_drops_rays_best_trial_line():
    from vidtune.trainable.tune.progress import TrialTable

    table = TrialTable(6, 2, metric_columns={"val_acc": "val_acc"}, max_report_frequency=15)
    table.set_search_properties("val_acc", "max")
    text = table._progress_str([], done=False)
    first, second = text.splitlines()[:2]
    assert first.startswith("[") and "trials: 0 done, 0 running, 6 left" in first
    assert second == "== Status ==" and "Current best trial" not in text
