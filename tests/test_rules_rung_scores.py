"""Rung scores and the offline ASHA replay on hand-made curves, in milliseconds."""

from __future__ import annotations

import math

import pytest

from benchmarks.lib.rung_rules import (
    Pool,
    best_by,
    rank_of_best,
    replay,
    rule_correlations,
    spearman,
    time_to,
)
from vidtune.trainable.core.rung_scores import fit, get_rung_score


def test_scores_read_the_curve_so_far():
    curve = [0.5, 0.7, 0.6]
    assert get_rung_score("last")(curve, 6) == 0.6
    assert get_rung_score("best")(curve, 6) == 0.7
    assert get_rung_score("mean2")(curve, 6) == pytest.approx(0.65)
    # Exactly a - b/t (a = 0.9, b = 0.4): the fit reads a - b/6 at max_epochs.
    assert fit([0.9 - 0.4 / t for t in (1, 2, 3)], 6) == pytest.approx(0.9 - 0.4 / 6)
    assert fit([0.3], 6) == 0.3                      # one epoch: nothing to fit
    assert fit([0.2, 0.9], 100) == 1.0               # clipped to an accuracy
    with pytest.raises(ValueError, match="rung score 'median' is unknown; known: last, best"):
        get_rung_score("median")


def test_rank_correlation_per_rule_and_where_the_late_bloomer_ranks():
    curves = [[0.3, 0.5, 0.9], [0.6, 0.7, 0.75], [0.5, 0.6, 0.65], [0.1, 0.2, 0.3]]
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    rho = rule_correlations(curves, 3, epochs=(1, 2))
    # Final values 0.9, 0.75, 0.65, 0.3 (ranks 4 3 2 1); epoch 1 ranks them 2 4 3 1.
    assert rho["last"][1] == pytest.approx(spearman([2, 4, 3, 1], [4, 3, 2, 1]))
    assert rank_of_best(curves, 3, 1, "last") == 3      # the winner is third after epoch 1
    # After epoch 2 the fit reads a - b/3: 0.567 for the winner (a 0.7, b 0.4) against 0.733 and
    # 0.633: a - b/t saturates fast, so its slope lifts it less than a straight line would.
    assert fit([0.3, 0.5], 3) == pytest.approx(0.7 - 0.4 / 3)
    assert rank_of_best(curves, 3, 2, "fit") == 3


def _pool() -> Pool:
    # Config 0 leads at epoch 1 and stalls; config 1 starts low and ends best (the late
    # bloomer); configs 2-4 are weak throughout. One epoch costs 1 s.
    return Pool([[0.6, 0.61, 0.62, 0.63], [0.2, 0.5, 0.8, 0.95]] + [[0.1] * 4] * 3, [1.0] * 5)


def test_stop_asha_loses_the_late_bloomer_and_promotion_gives_it_its_chance_back():
    pool = _pool()
    # One worker, rungs at epochs 1 and 2 (grace 1, rf 2, 4 epochs), configs in order 0-4.
    stop = replay(pool, [0, 1, 2, 3, 4], "stop", "last", 1, 100.0, 1, 2, 4)
    # Stop: 0 passes both rungs (first there); 1 stops at epoch 1 (0.2 < 0.6, the rung so far),
    # and 2-4 stop there too (0.1 against medians 0.4, 0.2, 0.15).
    assert best_by(stop, 100.0) == 0.63 and math.isinf(time_to(stop, 0.95))
    assert len(stop) == 4 + 1 + 1 + 1 + 1
    promote = replay(pool, [0, 1, 2, 3, 4], "promote", "last", 1, 100.0, 1, 2, 4)
    # Promote: 0 pauses at epoch 1 (a lone record has no cutoff), 1 pauses at 0.2; 0 goes on
    # (0.6 >= the median 0.4), pauses at epoch 2; once 2 records 0.1 the median of epoch 1 is
    # 0.2 and 1 goes on to epoch 2 (0.5), where it waits behind 0's 0.61; when 3 and 4 have
    # lowered epoch 2's median to 0.5, 1 is promoted again and trains to 0.95.
    assert [acc for _, acc in promote[:4]] == [0.6, 0.2, 0.61, 0.1]
    assert best_by(promote, 100.0) == 0.95 and time_to(promote, 0.95) == 12.0   # 12 epochs in


def test_replay_keeps_to_its_budget_and_its_workers():
    pool = _pool()
    reports = replay(pool, [0, 1, 2, 3], "promote", "best", 2, 3.5, 1, 2, 4, start_s=0.5)
    assert all(t <= 3.5 for t, _ in reports)
    assert [t for t, _ in reports[:2]] == [1.5, 1.5]       # two workers start at once
    with pytest.raises(ValueError, match="kind is 'pause'; known: stop, promote"):
        replay(pool, [0], "pause", "last", 1, 1.0, 1, 2, 4)


def test_prior_distance_counts_log_ratios_relative_steps_and_categories():
    from benchmarks.lib.rung_rules import prior_distance

    prior = {"conv_blocks": 3, "conv_base": 32, "lstm_hidden": 256, "lr": 1e-3}
    assert prior_distance(prior, prior) == 0.0
    assert prior_distance({**prior, "lr": 1e-1, "conv_base": 16}, prior) == pytest.approx(2.5)


def test_bench_rules_writes_its_section_from_the_saved_curves(tmp_path):
    """The saved curves file is read as the benchmark reads it (a few replay orders)."""
    from benchmarks import bench_rules

    out = tmp_path / "bench.md"
    body = bench_rules.main(["--orders", "3", "--out", str(out)])
    assert "<!-- bench_rung_rules:start -->" in out.read_text()
    for score in ("last", "best", "mean2", "fit"):
        assert f"| {score} |" in body and f"| promote | {score} |" in body
    assert "The seed configuration (config 0)" in body and "The prior:" in body
