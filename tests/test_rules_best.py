"""The status vocabulary and both "best" rules on hand-built tables (no Ray, no files).

Tables have the columns the results loader writes (trials: trial_id, order, status, the
sampled parameters, final_val_acc, epochs; history: trial_id, epoch, val_acc). Rows are
deliberately not in trial order where the rule must go by the `order` column.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vidtune.trainable.core.results import (
    Best,
    TrialStatus,
    best_reported,
    best_trial,
    classify,
    count_statuses,
)

MAX = 3
PARAMS = ("lr", "lstm_hidden")


def trials(*rows: tuple[str, int, str, float, int],
           lstm: list[float] | None = None) -> pd.DataFrame:
    """Rows of (trial_id, order, status, final_val_acc, epochs); lr is 0.001 * (order + 1)."""
    df = pd.DataFrame(rows, columns=["trial_id", "order", "status", "final_val_acc", "epochs"])
    return df.assign(lr=[0.001 * (o + 1) for o in df["order"]],
                     lstm_hidden=lstm if lstm is not None else [32] * len(df))


def history(*rows: tuple[str, int, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "val_acc"])


# -- classify -----------------------------------------------------------------------------

@pytest.mark.parametrize("ray_status,last,expected", [
    # Ray's ERROR wins over everything the last result says.
    ("ERROR", {"epoch": MAX, "val_acc": 0.9}, TrialStatus.ERRORED),
    ("ERROR", {"epoch": 1, "diverged": 1}, TrialStatus.ERRORED),
    ("ERROR", None, TrialStatus.ERRORED),
    # A diverged report ends the trial itself, whatever Ray's status.
    ("TERMINATED", {"epoch": 2, "diverged": 1}, TrialStatus.DIVERGED),
    ("TERMINATED", {"epoch": MAX, "diverged": 1}, TrialStatus.DIVERGED),
    ("RUNNING", {"epoch": 1, "diverged": 1}, TrialStatus.DIVERGED),
    ("PENDING", {"epoch": 1, "diverged": 1}, TrialStatus.DIVERGED),
    # TERMINATED: completed at max_epochs (or beyond), else stopped by ASHA.
    ("TERMINATED", {"epoch": MAX, "diverged": 0}, TrialStatus.COMPLETED),
    ("TERMINATED", {"epoch": MAX + 1}, TrialStatus.COMPLETED),
    ("TERMINATED", {"epoch": MAX - 1, "diverged": 0}, TrialStatus.STOPPED),
    ("TERMINATED", {"epoch": 1}, TrialStatus.STOPPED),
    ("TERMINATED", {}, TrialStatus.STOPPED),
    ("TERMINATED", None, TrialStatus.STOPPED),
    # Not ended: RUNNING always runs; the snapshot's PENDING runs once it reported an epoch.
    ("RUNNING", {}, TrialStatus.RUNNING),
    ("RUNNING", {"epoch": MAX}, TrialStatus.RUNNING),
    ("PENDING", {"epoch": 1}, TrialStatus.RUNNING),
    ("PAUSED", {"epoch": 2}, TrialStatus.RUNNING),
    ("PENDING", {"epoch": 0}, TrialStatus.PENDING),
    ("PENDING", {"epoch": None}, TrialStatus.PENDING),
    ("PENDING", {}, TrialStatus.PENDING),
    ("PENDING", None, TrialStatus.PENDING),
    ("PAUSED", None, TrialStatus.PENDING),
])
def test_classify(ray_status, last, expected):
    assert classify(ray_status, last, MAX) is expected


def test_status_values_labels_and_groups():
    assert [s.value for s in TrialStatus] == \
        ["completed", "stopped", "diverged", "errored", "running", "pending"]
    assert {s: s.label for s in TrialStatus} == {
        TrialStatus.COMPLETED: "completed", TrialStatus.STOPPED: "stopped by ASHA",
        TrialStatus.DIVERGED: "diverged", TrialStatus.ERRORED: "errored",
        TrialStatus.RUNNING: "running", TrialStatus.PENDING: "pending"}
    assert {s for s in TrialStatus if s.failed} == {TrialStatus.DIVERGED, TrialStatus.ERRORED}
    assert {s for s in TrialStatus if s.unfinished} == {TrialStatus.RUNNING, TrialStatus.PENDING}
    assert TrialStatus("stopped") is TrialStatus.STOPPED and TrialStatus.STOPPED == "stopped"


def test_count_statuses_in_status_order_without_zeros():
    counts = count_statuses(["pending", "completed", "stopped", "stopped", "errored", "completed",
                             "stopped"])
    assert list(counts.items()) == [(TrialStatus.COMPLETED, 2), (TrialStatus.STOPPED, 3),
                                    (TrialStatus.ERRORED, 1), (TrialStatus.PENDING, 1)]
    assert count_statuses([]) == {}
    with pytest.raises(ValueError, match="stopped by ASHA"):
        count_statuses(["stopped by ASHA"])       # the label is not a status


# -- best_trial: the retrain rule ---------------------------------------------------------

def test_most_epochs_wins_over_a_higher_final_val_acc():
    table = trials(("a", 0, "stopped", 0.9, 1), ("b", 1, "completed", 0.4, MAX),
                   ("c", 2, "stopped", 0.8, 2), ("d", 3, "completed", 0.5, MAX))
    best = best_trial(table, PARAMS)
    assert best == Best("d", 0.5, MAX, {"lr": 0.004, "lstm_hidden": 32}, "completed")


def test_diverged_and_errored_trials_never_count():
    table = trials(("a", 0, "diverged", 0.95, MAX), ("b", 1, "errored", 0.9, MAX),
                   ("c", 2, "stopped", 0.3, 2), ("d", 3, "stopped", 0.6, 1))
    assert best_trial(table).trial_id == "c"   # the longest of the usable trials, not the best
    assert best_trial(table[table["status"] != "stopped"].assign(status="completed")) \
        .trial_id == "a"                       # the same rows are picked once not failed


def test_ties_go_to_the_earlier_trial_by_order_not_by_row():
    table = trials(("late", 5, "completed", 0.7, MAX), ("early", 2, "completed", 0.7, MAX),
                   ("mid", 3, "completed", 0.7, MAX), ("low", 1, "completed", 0.6, MAX))
    assert best_trial(table).trial_id == "early"
    assert best_trial(table.iloc[::-1]).trial_id == "early"


def test_stopped_trials_compete_among_themselves_while_none_went_further():
    table = trials(("a", 0, "stopped", 0.5, 1), ("b", 1, "running", 0.6, 1),
                   ("c", 2, "stopped", 0.7, 1), ("d", 3, "pending", math.nan, 0))
    assert best_trial(table).trial_id == "c"


@pytest.mark.parametrize("table", [
    trials(),
    trials(("a", 0, "pending", math.nan, 0), ("b", 1, "running", math.nan, 0)),
    trials(("a", 0, "diverged", 0.0, 1), ("b", 1, "errored", 0.4, 2), ("c", 2, "pending", 0.0, 0)),
], ids=["empty", "no epoch yet", "only failed"])
def test_nothing_to_pick_is_a_value_error(table):
    with pytest.raises(ValueError, match="no trial finished an epoch yet"):
        best_trial(table)


def test_params_leave_out_what_the_trial_did_not_sample():
    table = trials(("a", 0, "completed", 0.7, MAX), ("b", 1, "completed", 0.4, MAX),
                   lstm=[math.nan, 64])
    assert best_trial(table, PARAMS).params == {"lr": 0.001}
    assert best_trial(table, ()).params == {}


# -- best_reported: the best any trial reported at any epoch ------------------------------

def test_best_reported_is_the_highest_val_acc_at_any_epoch():
    table = trials(("a", 0, "completed", 0.5, MAX), ("b", 1, "stopped", 0.6, 1))
    hist = history(("a", 1, 0.3), ("a", 2, 0.55), ("a", 3, 0.5), ("b", 1, 0.52))
    best = best_reported(table, hist, PARAMS)
    # Not the retrain pick: a's epoch 2 beats every final value.
    assert best == Best("a", 0.55, 2, {"lr": 0.001, "lstm_hidden": 32}, "completed")
    assert best_trial(table).val_acc == 0.5


def test_best_reported_counts_failed_trials_but_never_a_diverged_report():
    """What the search found: an errored trial's earlier epoch counts; divergence reports 0."""
    table = trials(("a", 0, "diverged", 0.0, 2), ("b", 1, "errored", 0.7, 1),
                   ("c", 2, "completed", 0.6, MAX))
    hist = history(("a", 1, 0.2), ("a", 2, 0.0), ("b", 1, 0.7), ("c", 1, 0.4), ("c", 2, 0.5),
                   ("c", 3, 0.6))
    assert best_reported(table, hist, PARAMS) == \
        Best("b", 0.7, 1, {"lr": 0.002, "lstm_hidden": 32}, "errored")
    only_a = hist[hist["trial_id"] == "a"]
    assert best_reported(table, only_a, ()) == Best("a", 0.2, 1, {}, "diverged")


def test_best_reported_ties_go_to_the_earlier_trial_then_epoch():
    """The first of the tied rows, in the loader's history order: by trial, then by epoch."""
    table = trials(("a", 0, "completed", 0.6, 2), ("b", 1, "completed", 0.6, 2))
    hist = history(("a", 1, 0.4), ("a", 2, 0.6), ("b", 1, 0.6), ("b", 2, 0.6))
    best = best_reported(table, hist, ())
    assert best is not None and (best.trial_id, best.epoch) == ("a", 2)


def test_best_reported_is_none_before_any_report():
    table = trials(("a", 0, "pending", math.nan, 0))
    assert best_reported(table, history(), PARAMS) is None
    assert best_reported(table, history(("a", 1, math.nan)), PARAMS) is None


def test_best_reported_of_a_trial_missing_from_the_table():
    """A report read before the experiment snapshot listed its trial: no params, no status."""
    best = best_reported(trials(("a", 0, "running", 0.1, 1)),
                         history(("a", 1, 0.1), ("new", 1, 0.3)), PARAMS)
    assert best == Best("new", 0.3, 1, {}, "")


def test_best_round_trips_through_json():
    best = Best("a", 0.55, 2, {"lr": 0.001, "conv_base": 8}, "completed")
    assert Best.from_json(best.to_json()) == best
