"""The race benchmark: its rules on hand-made runs in milliseconds, and a smoke run.

No timing assertions: a smoke run's figures on a busy CI machine mean nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

from benchmarks.lib.race import RaceRun, make_race_plan, standing, variant
from benchmarks.lib.race_report import goals
from vidtune.trainable.core.search_config import SearchConfig


def run(method: str, seed: int, reports: list[tuple[float, float]], wall: float = 100.0,
        cpu: float = 0.95, mb: float | None = None) -> RaceRun:
    return RaceRun(method, seed, wall, reports, len(reports), 3, cpu, cpu, mb)


def test_time_to_target_and_best_so_far():
    r = run("vidtune", 0, [(10.0, 0.5), (20.0, 0.9), (30.0, 0.8), (40.0, 0.95)])
    assert r.best == 0.95
    assert r.time_to(0.9) == 20.0 and r.time_to(0.94) == 40.0 and math.isinf(r.time_to(0.99))
    got = r.best_so_far(np.array([0.0, 10.0, 25.0, 35.0, 50.0]))
    assert np.isnan(got[0]) and list(got[1:]) == [0.5, 0.9, 0.9, 0.95]


def test_target_is_the_best_of_the_seed_minus_one_point_and_the_ratio_uses_the_best_peer():
    runs = [run("vidtune", 0, [(30.0, 0.96)]), run("ray-tune", 0, [(50.0, 0.97)]),
            run("optuna", 0, [(20.0, 0.90), (90.0, 0.965)]),
            run("vidtune", 1, [(40.0, 0.80)]), run("ray-tune", 1, [(80.0, 0.80)]),
            run("optuna", 1, [(10.0, 0.70)])]
    st = standing(runs)
    assert st.targets == pytest.approx({0: 0.96, 1: 0.79})
    assert st.ttt["vidtune"] == {0: 30.0, 1: 40.0}
    assert st.ttt["optuna"][0] == 90.0 and math.isinf(st.ttt["optuna"][1])
    assert st.median_ttt["ray-tune"] == 65.0
    rows = {figure: (measured, verdict.ok) for figure, measured, _, verdict in goals(st, runs)}
    # vidtune 35 s against ray-tune's 65 s (optuna's median is infinite): 0.54x, not <= 0.5x.
    assert rows["median time to target, vidtune / best peer"] == ("0.54x (35 s vs ray-tune 65 s)", False)
    assert rows["mean best val acc, vidtune - best peer"][1] is True   # -0.5 pt against ray-tune


def test_variants_override_search_config_fields_and_bad_ones_are_refused():
    cfg = variant(SearchConfig(), "vidtune:cpu_sharing=restart,tpe_constant_liar=true,grace_period=2")
    assert (cfg.cpu_sharing, cfg.tpe_constant_liar, cfg.grace_period) == ("restart", True, 2)
    with pytest.raises(ValueError, match="'nope=1' is not field=value"):
        make_race_plan(methods=("vidtune:nope=1",))
    with pytest.raises(ValueError, match="unknown methods"):
        make_race_plan(methods=("hyperopt",))


@pytest.mark.slow
def test_race_smoke_writes_its_section_and_plot(tmp_path):
    from benchmarks import bench_race

    out = tmp_path / "bench.md"
    body = bench_race.main(["--smoke", "--out", str(out), "--make-search-seeds", "0"])
    assert "<!-- bench_race:start -->" in out.read_text()
    for method in ("vidtune", "ray-tune", "optuna", "random"):
        assert f"| {method} |" in body
    assert "median time to target, vidtune / best peer" in body and "Smoke run" in body
    img = imread(tmp_path / "race.png")
    assert img.ndim == 3 and img.std() > 0.02   # a drawn plot, not a blank canvas


# -- the race at equal wall time ----------------------------------------------------

def brun(method: str, seed: int, reports: list[tuple[float, float]], space: str = "default",
         trials: int = 3) -> RaceRun:
    return RaceRun(method, seed, 100.0, reports, len(reports), trials, 0.9, 0.9, None, space)


def test_budget_standing_reads_best_by_each_quarter_and_the_best_peers_target():
    from benchmarks.lib.race_budget import budget_standing, goal_rows

    runs = [brun("vidtune", 0, [(10.0, 0.80), (60.0, 0.95)]),
            brun("vidtune", 1, [(30.0, 0.90)]),
            brun("random", 0, [(20.0, 0.85), (90.0, 0.93)]),
            brun("random", 1, [(40.0, 0.91), (120.0, 0.99)]),   # after B = 100 s: ignored
            brun("optuna", 0, []), brun("optuna", 1, [(5.0, 0.70)]),
            brun("vidtune", 0, [(1.0, 0.99)], space="wide")]    # another space: not counted
    st = budget_standing(runs, "default", 100.0)
    # By 25 s: vidtune 0.80 and 0 (nothing yet) -> median 0.40; random 0.85 and 0 -> 0.425.
    assert st.best_at["vidtune"] == pytest.approx((0.40, 0.85, 0.925))
    assert st.best_at["random"] == pytest.approx((0.425, 0.88, 0.92))
    assert st.best_at["optuna"] == pytest.approx((0.35, 0.35, 0.35))
    assert (st.target_from, st.target) == ("random", pytest.approx(0.92))
    # vidtune reaches 0.92 at 60 s on seed 0, never on seed 1; random never (0.91, 0.93 at 90 s).
    assert st.ttt["vidtune"] == {0: 60.0, 1: math.inf}
    assert st.ttt["random"] == {0: 90.0, 1: math.inf}
    assert st.median_trials["vidtune"] == 3
    rows = {figure: (measured, ok) for figure, measured, _, ok in goal_rows(st)}
    assert rows["median best val acc by B/4, vidtune - best peer"] == ("-2.5 pt (vs random 0.425)", False)
    assert rows["median best val acc by B, vidtune - best peer"][1] is True
    assert rows["median time to target, vidtune / best peer"] == ("infx (never vs random never)", False)
    with pytest.raises(ValueError, match="no runs on space 'tiny'; spaces raced: default, wide"):
        budget_standing(runs, "tiny", 100.0)


def test_budget_plan_races_as_many_trials_as_fit_and_refuses_a_space_stock_tune_lacks():
    from benchmarks import bench_race
    from vidtune.trainable.tune.stock import WIDE_PARAM_SPACE

    plan = make_race_plan(seeds=3, budget_s=480.0, space="wide")
    assert (plan.num_samples, plan.budget_s, plan.space, plan.seeds) == (0, 480.0, "wide", (0, 1, 2))
    assert set(WIDE_PARAM_SPACE) == {"conv_blocks", "conv_base", "lstm_hidden", "lr", "lstm_layers",
                                     "dropout", "weight_decay", "batch_size"}
    with pytest.raises(SystemExit):
        bench_race.main(["--budget", "1m", "--spaces", "video", "--out", "/dev/null"])


@pytest.mark.slow
def test_budget_race_smoke_writes_its_section_and_plot(tmp_path):
    """The --budget path end to end: every method under the same budget on the tiny data."""
    from benchmarks import bench_race
    from benchmarks.lib.race import load_runs

    out = tmp_path / "bench.md"
    body = bench_race.main(["--smoke", "--budget", "12s", "--out", str(out),
                            "--results-dir", str(tmp_path / "runs")])
    assert "<!-- bench_race_budget:start -->" in out.read_text()
    assert "#### Space `wide`" in body and "median time to target, vidtune / best peer" in body
    runs = load_runs(tmp_path / "runs" / "race_runs.json")
    assert sorted(r.method for r in runs) == ["optuna", "random", "ray-tune", "vidtune"]
    assert {r.space for r in runs} == {"wide"}
    img = imread(tmp_path / "race-budget.png")
    assert img.ndim == 3 and img.std() > 0.02
