"""ResumableASHA's rules in milliseconds: rung decisions, the promotion cap, the state round trip.

Ray's own ASHA logic runs (AsyncHyperBandScheduler and its _Bracket); only the trial is a
stand-in, and Ray is never started. The cutoffs in the comments are worked out by hand from
Ray's rule: a trial passes a rung if its value is at or above the (1 - 1/rf) quantile (numpy's
linear interpolation) of the values recorded there before it, stopped trials' values included.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow.fs
import pytest
from standins import storage

from vidtune.analysis import asha_milestones
from vidtune.trainable.tune.asha import DECISIONS_FILE, ResumableASHA, RungKeeper, too_slow

CONTINUE, STOP = ResumableASHA.CONTINUE, ResumableASHA.STOP
LOGGER = "vidtune.trainable.tune.asha"


@dataclass(frozen=True)
class Trial:
    """What ASHA reads from a Ray trial: its id, and the experiment folder for the decision log."""

    trial_id: str
    remote_experiment_path: str = ""
    fs: Any = None

    @property
    def storage(self) -> SimpleNamespace:
        return storage(self.remote_experiment_path, self.fs)


def make_asha(*, max_t: int = 4, grace: int = 1, rf: float = 2, cap: bool = False) -> ResumableASHA:
    """A scheduler as the driver builds it (max 4, rf 2: rungs at 1, 2 and 4).

    Tune hands it the metric and mode the same way.
    """
    asha = ResumableASHA(time_attr="epoch", max_t=max_t, grace_period=grace, reduction_factor=rf,
                         promotion_cap=cap)
    assert asha.set_search_properties("val_acc", "max")
    return asha


def add(asha: ResumableASHA, folder: Path | str, *ids: str) -> list[Trial]:
    """Tune adds each trial to the scheduler before its first result."""
    trials = [Trial(i, str(folder)) for i in ids]
    for trial in trials:
        asha.on_trial_add(None, trial)
    return trials


def report(asha: ResumableASHA, trial_id: str, epoch: int, val_acc: float) -> str:
    return asha.on_trial_result(None, Trial(trial_id), {"epoch": epoch, "val_acc": val_acc})


def records(asha: ResumableASHA) -> dict[float, dict[str, float]]:
    """{milestone: {trial_id: value}} as the scheduler holds them."""
    return {float(m): dict(values) for m, values, _ in asha.rung_state()}


def promoted(asha: ResumableASHA) -> dict[float, list[str]]:
    return {float(m): list(ids) for m, _, ids in asha.rung_state()}


def decisions(folder: Path) -> list[dict[str, Any]]:
    path = folder / DECISIONS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- where the rungs are ------------------------------------------------------------------

def _rung_epochs(folder: Path, grace: int, rf: float, max_t: int) -> list[int]:
    """The epochs below max_t at which the scheduler records a trial that reports every epoch."""
    asha = make_asha(max_t=max_t, grace=grace, rf=rf)
    add(asha, folder, "t")
    out = []
    for epoch in range(1, max_t):
        before = sum(map(len, records(asha).values()))
        assert report(asha, "t", epoch, 0.5) == CONTINUE   # alone at every rung
        if sum(map(len, records(asha).values())) > before:
            out.append(epoch)
    return out


@pytest.mark.parametrize("grace,rf,max_t,expected", [
    (1, 3, 6, [1, 3]),        # the defaults (README: rungs at epochs 1 and 3)
    (1, 2, 3, [1, 2]),
    (1, 2, 8, [1, 2, 4]),     # Ray also keeps a rung at max_t, reached only on completion
    (2, 2, 9, [2, 4, 8]),
    (1, 3, 27, [1, 3, 9]),
    (2, 2, 2, []),
])
def test_rungs_sit_at_grace_times_rf_powers_below_max(tmp_path, grace, rf, max_t, expected):
    assert _rung_epochs(tmp_path, grace, rf, max_t) == expected


@pytest.mark.parametrize("grace,rf,max_t", [
    (1, 3, 6), (1, 2, 3), (1, 2, 8), (2, 2, 9), (1, 3, 27), (2, 2, 2), (1, 4, 30), (3, 3, 30),
    (1, 2.5, 10),   # Ray's rung at 2.5 records at epoch 3, the first epoch >= 2.5
])
def test_analysis_milestones_are_the_schedulers_rungs(tmp_path, grace, rf, max_t):
    """The analysis marks the rungs on its plots (and the benchmark replays them) without Ray."""
    assert asha_milestones(grace, rf, max_t) == _rung_epochs(tmp_path, grace, rf, max_t)


# -- Ray's rule at a rung -----------------------------------------------------------------

def test_rung_keeps_trials_at_or_above_the_quantile_of_earlier_records(tmp_path):
    asha = make_asha()                                 # rf 2: the cutoff is the median
    add(asha, tmp_path, *[f"t{i}" for i in range(6)])
    assert report(asha, "t0", 1, 0.2) == CONTINUE      # an empty rung has no cutoff
    assert report(asha, "t1", 1, 0.8) == CONTINUE      # cutoff 0.2
    assert report(asha, "t2", 1, 0.5) == CONTINUE      # cutoff median(.2 .8) = 0.5: at it passes
    assert report(asha, "t3", 1, 0.49) == STOP         # cutoff median(.2 .8 .5) = 0.5
    assert report(asha, "t4", 1, 0.45) == STOP         # cutoff median(.2 .49 .5 .8) = 0.495
    assert report(asha, "t5", 1, 0.49) == CONTINUE     # cutoff median(.2 .45 .49 .5 .8) = 0.49
    assert records(asha)[1.0] == {"t0": 0.2, "t1": 0.8, "t2": 0.5, "t3": 0.49, "t4": 0.45,
                                  "t5": 0.49}


def test_rf_three_keeps_the_top_third(tmp_path):
    asha = make_asha(max_t=6, rf=3)                    # cutoff: the 2/3 quantile
    add(asha, tmp_path, *[f"t{i}" for i in range(5)])
    for i, value in enumerate([0.2, 0.5, 0.8]):
        report(asha, f"t{i}", 1, value)
    assert report(asha, "t3", 1, 0.59) == STOP         # 0.5 + (2/3 * 2 - 1) * 0.3 = 0.6
    assert report(asha, "t4", 1, 0.61) == CONTINUE     # cutoff of (.2 .5 .59 .8): 0.59 + 0.21/3


def test_rung_records_stopped_trials_and_ignores_epochs_between_rungs(tmp_path):
    asha = make_asha(max_t=6, rf=3)                    # rungs at 1 and 3
    add(asha, tmp_path, "t0", "t1")
    assert report(asha, "t0", 1, 0.9) == CONTINUE
    assert report(asha, "t1", 1, 0.1) == STOP
    assert records(asha) == {3.0: {}, 1.0: {"t0": 0.9, "t1": 0.1}}
    assert report(asha, "t0", 2, 0.0) == CONTINUE      # epoch 2 is no rung: any value goes on
    assert report(asha, "t0", 3, 0.7) == CONTINUE      # first at rung 3
    assert report(asha, "t0", 4, 0.0) == CONTINUE
    assert report(asha, "t0", 6, 0.7) == STOP          # max_t: Ray ends the trial
    assert records(asha) == {3.0: {"t0": 0.7}, 1.0: {"t0": 0.9, "t1": 0.1}}
    assert promoted(asha) == {3.0: ["t0"], 1.0: ["t0"]}


def test_results_without_epoch_or_val_acc_decide_nothing(tmp_path):
    asha = make_asha()
    add(asha, tmp_path, "t0", "t1")
    report(asha, "t0", 1, 0.9)
    assert asha.on_trial_result(None, Trial("t1"), {"epoch": 1}) == CONTINUE
    assert asha.on_trial_result(None, Trial("t1"), {"val_acc": 0.0}) == CONTINUE
    assert records(asha)[1.0] == {"t0": 0.9}
    assert len(decisions(tmp_path)) == 1


# -- the promotion cap --------------------------------------------------------------------

@pytest.mark.parametrize("rf,expected", [
    (2, [1, 1, 1, 2, 2, 3, 3, 4]),
    (3, [1, 1, 1, 1, 1, 2, 2, 2]),
])
def test_cap_is_max_one_floor_n_over_rf(rf, expected):
    asha = make_asha(max_t=9, rf=rf, cap=True)
    assert [asha.cap(n) for n in range(1, 9)] == expected


def test_cap_stops_trials_the_quantile_would_let_through(tmp_path):
    """Rising values (a sampler that learns) pass Ray's quantile every time; the cap holds n//rf."""
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    ids = [f"t{i}" for i in range(len(values))]
    plain, capped = make_asha(), make_asha(cap=True)
    add(plain, tmp_path / "plain", *ids)
    add(capped, tmp_path / "capped", *ids)
    assert [report(plain, i, 1, v) for i, v in zip(ids, values, strict=True)] == [CONTINUE] * 6
    # n = 1..6 recorded, cap 1 1 1 2 2 3: t0 passes, then t3 (n 4), then t5 (n 6)
    assert [report(capped, i, 1, v) for i, v in zip(ids, values, strict=True)] == \
        [CONTINUE, STOP, STOP, CONTINUE, STOP, CONTINUE]
    assert promoted(plain)[1.0] == ids
    assert promoted(capped)[1.0] == ["t0", "t3", "t5"]
    assert records(capped) == records(plain)           # the cap decides; Ray still records all


def test_cap_never_passes_a_trial_the_quantile_stops(tmp_path):
    asha = make_asha(cap=True)
    ids = [f"t{i}" for i in range(6)]
    add(asha, tmp_path, *ids)
    values = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    actions = [report(asha, i, 1, v) for i, v in zip(ids, values, strict=True)]
    assert actions == [CONTINUE] + [STOP] * 5          # each is below the median before it
    assert promoted(asha)[1.0] == ["t0"]


@pytest.mark.parametrize("rf", [2, 3])
def test_cap_holds_at_every_step_for_any_arrival_order(tmp_path, rf):
    rng = np.random.default_rng(0)
    ids = [f"t{i}" for i in range(9)]
    for case in range(30):
        plain, capped = make_asha(max_t=9, rf=rf), make_asha(max_t=9, rf=rf, cap=True)
        add(plain, tmp_path / f"p{case}", *ids)
        add(capped, tmp_path / f"c{case}", *ids)
        for n, (trial_id, value) in enumerate(zip(ids, rng.uniform(size=9), strict=True), start=1):
            quantile = report(plain, trial_id, 1, value)
            before = len(promoted(capped)[1.0])
            action = report(capped, trial_id, 1, value)
            assert len(promoted(capped)[1.0]) <= capped.cap(n)
            # A trial passes exactly when Ray's quantile lets it and the rung has a place left.
            assert (action == CONTINUE) == (quantile == CONTINUE and before < capped.cap(n))


# -- the decision log ---------------------------------------------------------------------

def test_every_rung_record_is_logged_with_its_cutoff(tmp_path):
    asha = make_asha(cap=True)
    add(asha, tmp_path, "t0", "t1", "t2")
    report(asha, "t0", 1, 0.2)
    report(asha, "t1", 1, 0.8)     # passes the quantile, but t0 took the one place (cap of 2)
    report(asha, "t2", 1, 0.1)
    report(asha, "t0", 2, 0.3)
    report(asha, "t0", 3, 0.3)     # no rung at 3: not logged
    assert report(asha, "t0", 4, 0.4) == STOP          # max_t: decided before any rung
    asha.on_trial_complete(None, Trial("t0"), {"epoch": 4, "val_acc": 0.4})   # the rung at max_t
    logged = [(d["trial_id"], d["milestone"], d["value"], d["cutoff"], d["rung_size"], d["action"])
              for d in decisions(tmp_path)]
    assert logged == [
        ("t0", 1.0, 0.2, None, 0, "CONTINUE"),
        ("t1", 1.0, 0.8, 0.2, 1, "STOP"),
        ("t2", 1.0, 0.1, pytest.approx(0.5), 2, "STOP"),
        ("t0", 2.0, 0.3, None, 0, "CONTINUE"),
        ("t0", 4.0, 0.4, None, 0, "COMPLETE"),
    ]


def test_decision_log_behind_a_uri_lands_on_its_filesystem(tmp_path, monkeypatch):
    """For a storage URI Ray hands the scheduler a filesystem and a path on it (the scheme is
    not part of the path): the log goes there, never into the working directory."""
    monkeypatch.chdir(tmp_path / "..")
    bucket = tmp_path / "bucket"
    (bucket / "search").mkdir(parents=True)   # Ray creates the experiment folder first
    asha = make_asha()
    trial = Trial("t0", "search", fs=pyarrow.fs.SubTreeFileSystem(str(bucket), pyarrow.fs.LocalFileSystem()))
    asha.on_trial_add(None, trial)
    report(asha, "t0", 1, 0.5)
    (line,) = (bucket / "search" / DECISIONS_FILE).read_text().splitlines()
    assert json.loads(line)["trial_id"] == "t0" and not (tmp_path / ".." / "search").exists()


# -- state round trip ---------------------------------------------------------------------

def _history(asha: ResumableASHA, folder: Path) -> None:
    """Four trials at rung 1 (median cutoff); t0, which passes with or without the cap, at 2."""
    add(asha, folder, "t0", "t1", "t2", "t3")
    for i, value in enumerate([0.2, 0.8, 0.5, 0.49]):
        report(asha, f"t{i}", 1, value)
    report(asha, "t0", 2, 0.3)


@pytest.mark.parametrize("cap", [False, True])
@pytest.mark.parametrize("transport", ["pickle", "json"])
def test_rung_keeper_round_trip_restores_every_record(tmp_path, caplog, cap, transport):
    original = make_asha(cap=cap)
    _history(original, tmp_path)
    state = RungKeeper(original).get_state()
    if transport == "pickle":      # how Tune saves callback state
        state = pickle.loads(pickle.dumps(state))
    else:                          # and a state that went through JSON, with its lists
        state = json.loads(json.dumps(state))

    restored = make_asha(cap=cap)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        RungKeeper(restored).set_state(state)
    assert restored.rung_state() == original.rung_state()
    assert records(restored) == {4.0: {}, 2.0: {"t0": 0.3},
                                 1.0: {"t0": 0.2, "t1": 0.8, "t2": 0.5, "t3": 0.49}}
    assert promoted(restored)[1.0] == (["t0"] if cap else ["t0", "t1", "t2"])
    assert "restored 5 ASHA rung records" in caplog.text


@pytest.mark.parametrize("cap", [False, True])
def test_restored_scheduler_decides_as_the_original_would(tmp_path, cap):
    original = make_asha(cap=cap)
    _history(original, tmp_path / "a")
    restored, forgetful = make_asha(cap=cap), make_asha(cap=cap)
    restored.load_rung_state(original.rung_state())
    for asha in (restored, forgetful):                 # Tune re-adds the restored trials
        add(asha, tmp_path / "b", "t0", "t1", "t2", "t3")
    for asha in (original, restored, forgetful):
        add(asha, tmp_path / "c", "t4", "t5")
    # A weak new trial at rung 1, a strong one, then the strong one too weak at rung 2.
    steps = [("t4", 1, 0.3), ("t5", 1, 0.95), ("t5", 2, 0.1)]
    want = [report(original, *step) for step in steps]
    assert want == [STOP, CONTINUE, STOP]     # cutoffs 0.495, 0.49; at rung 2 t0's 0.3
    assert [report(restored, *step) for step in steps] == want
    assert restored.rung_state() == original.rung_state()
    # What Tuner.restore alone gives (ray#30838): empty rungs let the weak trial through.
    assert report(forgetful, *steps[0]) == CONTINUE


def test_cap_counts_promotions_from_before_the_restore(tmp_path):
    original = make_asha(cap=True)
    add(original, tmp_path, "t0", "t1")
    report(original, "t0", 1, 0.5)                     # takes rung 1's only place for n < 4
    restored, forgetful = make_asha(cap=True), make_asha(cap=True)
    restored.load_rung_state(original.rung_state())
    for asha in (restored, forgetful):
        add(asha, tmp_path, "t0", "t1")
    assert report(original, "t1", 1, 0.9) == STOP
    assert report(restored, "t1", 1, 0.9) == STOP
    forgetful.load_rung_state([[1.0, {"t0": 0.5}]])   # the records without the promoted list
    assert report(forgetful, "t1", 1, 0.9) == CONTINUE


def test_load_replaces_records_and_empties_rungs_missing_from_the_state(tmp_path):
    asha = make_asha()
    _history(asha, tmp_path)
    asha.load_rung_state([[1.0, {"x": 0.7}, ["x"]]])
    assert records(asha) == {4.0: {}, 2.0: {}, 1.0: {"x": 0.7}}
    assert promoted(asha) == {4.0: [], 2.0: [], 1.0: ["x"]}


def test_load_accepts_the_two_field_rung_state(caplog):
    """Snapshots written before the promoted lists existed hold [milestone, records] per rung."""
    asha = make_asha(cap=True)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        RungKeeper(asha).set_state({"rungs": [[1, {"a": 0.4, "b": 0.6}], [2, {"b": 0.7}]]})
    assert records(asha) == {4.0: {}, 2.0: {"b": 0.7}, 1.0: {"a": 0.4, "b": 0.6}}
    assert promoted(asha) == {4.0: [], 2.0: [], 1.0: []}
    assert "restored 3 ASHA rung records" in caplog.text


# -- cost in view (--asha-cost-factor) ------------------------------------------------------

@pytest.mark.parametrize("value,seconds,expected", [
    (0.80, 10.0, True),            # 5x the median cost and below the leader: stopped
    (0.95, 10.0, False),           # slow but leads the rung: runs on
    (0.80, 4.0, False),            # 2x the median is not more than 2x: runs on
    (0.80, float("nan"), False),   # cost unknown: the quantile rule alone decides
])
def test_too_slow_stops_only_slow_trials_that_do_not_lead(value, seconds, expected):
    others = [(0.90, 2.0), (0.70, 2.0)]
    assert too_slow(value, seconds, others, cost_factor=2.0) is expected
    assert too_slow(value, seconds, others, cost_factor=0.0) is False   # off


def test_cost_factor_stops_a_slow_trial_that_does_not_lead_its_rung(tmp_path):
    asha = ResumableASHA(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2,
                         cost_factor=2.0)
    asha.set_search_properties("val_acc", "max")
    add(asha, tmp_path, "fast0", "fast1", "slow_leader", "slow_behind")

    def at_rung(trial_id: str, val_acc: float, seconds: float) -> str:
        return asha.on_trial_result(None, Trial(trial_id), {"epoch": 1, "val_acc": val_acc,
                                                             "time_total_s": seconds})

    assert at_rung("fast0", 0.60, 2.0) == CONTINUE
    assert at_rung("fast1", 0.70, 2.0) == CONTINUE
    assert at_rung("slow_leader", 0.90, 9.0) == CONTINUE   # 4.5x the median, but the best
    # Above the rung's median (the quantile lets it through), 4.5x the cost, not the best.
    assert at_rung("slow_behind", 0.80, 9.0) == STOP
    state = RungKeeper(asha).get_state()
    assert state["costs"] == {"fast0": 2.0, "fast1": 2.0, "slow_leader": 9.0, "slow_behind": 9.0}
    twin = ResumableASHA(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2,
                         cost_factor=2.0)
    RungKeeper(twin).set_state(json.loads(json.dumps(state)))
    assert twin.costs == asha.costs


class _Listed:
    """What the FIFO choice reads of a Tune trial: its status."""

    def __init__(self, status: str) -> None:
        self.status = status


@pytest.mark.parametrize("statuses", [
    "TTRT", "TTPT", "TPPR", "TTUT", "TUUR", "PUTT", "TTTT", "", "R", "UPU",
])
def test_choose_trial_to_run_is_fifos_choice_without_scanning_every_trial(statuses):
    """P pending, U paused, R running, T terminated: Tune's per-status sets give the one
    candidate; with two or more, FIFOScheduler's scan of Tune's list picks as always."""
    from ray.tune.schedulers import FIFOScheduler

    names = {"P": "PENDING", "U": "PAUSED", "R": "RUNNING", "T": "TERMINATED"}
    trials = [_Listed(names[s]) for s in statuses]
    scans = []

    def get_trials() -> list:
        scans.append(1)
        return trials

    controller = SimpleNamespace(
        get_trials=get_trials,
        _pending_trials={t for t in trials if t.status == "PENDING"},
        _paused_trials={t for t in trials if t.status == "PAUSED"})
    asha = ResumableASHA(time_attr="epoch", max_t=9, grace_period=1, reduction_factor=3)
    chosen = asha.choose_trial_to_run(controller)
    candidates = sum(s in "PU" for s in statuses)
    assert bool(scans) == (candidates > 1)
    assert chosen is FIFOScheduler().choose_trial_to_run(controller)
