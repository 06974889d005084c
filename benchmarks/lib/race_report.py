"""The race's section of docs/benchmarks.md: per-seed table, the standing, the goals, the plot."""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks.lib.common import SMOKE_NOTE, Verdict, describe_data, machine_line
from benchmarks.lib.race import (
    GOAL_ACC_GAP,
    GOAL_CPU,
    GOAL_STORAGE_MB,
    GOAL_TTT_RATIO,
    TARGET_GAP,
    RacePlan,
    RaceRun,
    Standing,
)

KEY = "bench_race"


def _s(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.0f} s"


def goals(st: Standing, runs: list[RaceRun]) -> list[tuple[str, str, str, Verdict]]:
    """(figure, measured, goal, verdict) rows; an absent method makes its row not resolvable."""
    rows: list[tuple[str, str, str, Verdict]] = []
    if "vidtune" not in st.median_ttt:
        return rows
    peers = {m: t for m, t in st.median_ttt.items() if m.split(":")[0] != "vidtune"}
    if peers:
        best_peer = min(peers, key=lambda m: peers[m])
        mine, theirs = st.median_ttt["vidtune"], peers[best_peer]
        ratio = mine / theirs if math.isfinite(theirs) and theirs > 0 else (
            0.0 if math.isfinite(mine) else math.inf)
        rows.append(("median time to target, vidtune / best peer",
                     f"{ratio:.2f}x ({_s(mine)} vs {best_peer} {_s(theirs)})",
                     f"<= {GOAL_TTT_RATIO}x", Verdict(ratio <= GOAL_TTT_RATIO)))
        worst = min(st.mean_best["vidtune"] - st.mean_best[m] for m in peers)
        rows.append(("mean best val acc, vidtune - best peer", f"{100 * worst:+.1f} pt",
                     f">= -{100 * GOAL_ACC_GAP:.0f} pt", Verdict(worst >= -GOAL_ACC_GAP - 1e-12)))
    # The measure: epoch seconds x threads over wall x cores (the machine-wide /proc/stat
    # figure counts whatever else runs on the machine, so it is shown in the table only).
    cpu = st.median_epoch_busy["vidtune"]
    rows.append(("cores busy in vidtune's epochs (median)", f"{cpu:.0%}", f">= {GOAL_CPU:.0%}",
                 Verdict(cpu >= GOAL_CPU)))
    sizes = [r.storage_mb for r in runs if r.method == "vidtune" and r.storage_mb is not None]
    if sizes:
        rows.append(("vidtune's results folder (largest)", f"{max(sizes):.0f} MB",
                     f"<= {GOAL_STORAGE_MB:.0f} MB", Verdict(max(sizes) <= GOAL_STORAGE_MB)))
    return rows


def render(plan: RacePlan, runs: list[RaceRun], st: Standing, png: Path, doc: Path,
           took_s: float) -> str:
    methods = list(st.median_ttt)
    lines = [
        "## The race at a fixed 12 trials: wall time to a good model against stock Ray Tune "
        "and Optuna (`benchmarks/bench_race.py`)",
        "",
        f"- Run: {machine_line()}; {took_s / 60:.1f} min in all.",
        f"- Work: space `{plan.space}`, {plan.num_samples} trials, up to {plan.max_epochs} epochs, "
        f"{describe_data(plan.data)}; seeds {', '.join(map(str, plan.seeds))}, the order of the "
        "methods rotated from seed to seed.",
        "- Methods: **vidtune** = `vidtune search` as shipped; **ray-tune** = Tuner + "
        "OptunaSearch (ConcurrencyLimiter 4) + ASHAScheduler with stock settings (grace 1, "
        "reduction factor 4), 1 CPU per trial; **optuna** = TPE + SuccessiveHalvingPruner, "
        f"{plan.workers} worker processes (one per core, 1 torch thread each) on one "
        "JournalStorage file; **random** = random proposals, no early stopping.",
        f"- Time to target: the first moment a method's best-so-far is within {100 * TARGET_GAP:.0f} "
        "pt of the best that any method reached with that seed, counted from the method's "
        "start (its Ray start included).",
    ]
    if plan.smoke:
        lines += ["", SMOKE_NOTE]
    lines += ["", "| figure | measured | goal | result |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {v} |" for a, b, c, v in goals(st, runs)]
    lines += ["", "| method | median time to target | mean best val acc | median wall time | "
                  "median epochs | median cores busy (machine) | median cores in epochs |",
              "|---|---|---|---|---|---|---|"]
    for m in methods:
        lines.append(f"| {m} | {_s(st.median_ttt[m])} | {st.mean_best[m]:.4f} | "
                     f"{st.median_wall[m]:.0f} s | {st.median_epochs[m]:.0f} | "
                     f"{st.median_cpu[m]:.0%} | {st.median_epoch_busy[m]:.0%} |")
    lines += ["", "Cores busy (machine): busy CPU time of the whole machine over wall x cores, "
              "from /proc/stat (meaningful on an idle machine). Cores in epochs: the trials' "
              "epoch seconds x torch threads over wall x cores (Ray's start, data loading "
              "between epochs and the driver count as idle)."]
    lines += ["", "Per seed: time to target / best val acc / wall time / epochs.", "",
              "| seed | target | " + " | ".join(methods) + " |",
              "|---|---|" + "---|" * len(methods)]
    by = {(r.method, r.seed): r for r in runs}
    for seed, target in st.targets.items():
        cells = [f"{_s(st.ttt[m][seed])} / {by[m, seed].best:.4f} / {by[m, seed].wall_s:.0f} s / "
                 f"{by[m, seed].epochs}" if (m, seed) in by else "-" for m in methods]
        lines.append(f"| {seed} | {target:.4f} | " + " | ".join(cells) + " |")
    rel = Path(png).resolve().relative_to(Path(doc).resolve().parent) if Path(png).resolve().is_relative_to(
        Path(doc).resolve().parent) else Path(png)
    lines += ["", f"![best-so-far against wall time, median over seeds]({rel.as_posix()})"]
    return "\n".join(lines)


BUDGET_KEY = "bench_race_budget"


def render_budget(plans: list[RacePlan], runs: list[RaceRun], png: Path, doc: Path,
                  took_s: float) -> str:
    """The section of the race at equal wall time: per space, the goals, the table, the seeds."""
    from benchmarks.lib.race_budget import FRACTIONS, _frac, budget_standing, goal_rows

    plan = plans[0]
    b = plan.budget_s
    lines = [
        "### The run: the best model from the same minutes "
        "(`benchmarks/bench_race.py --budget`)",
        "",
        f"- Run: {machine_line()}; {took_s / 60:.1f} min in all.",
        f"- Work: {b:.0f} s of wall time per method and seed, counted from the method's start "
        f"(its Ray start included), as many trials as fit, up to {plan.max_epochs} epochs "
        f"each; {describe_data(plan.data)}; spaces {', '.join(f'`{p.space}`' for p in plans)}; "
        f"seeds {', '.join(map(str, plan.seeds))}, the order of the methods rotated from seed "
        "to seed.",
        "- Methods: **vidtune** = `vidtune search --time-budget B`; **ray-tune** = Tuner + "
        "OptunaSearch (ConcurrencyLimiter 4) + ASHAScheduler with stock settings, "
        "TuneConfig(time_budget_s) set to what is left of B after Ray's start; **optuna** = TPE + "
        f"SuccessiveHalvingPruner, {plan.workers} worker processes on one JournalStorage file, "
        "`optimize(timeout=...)` to B, the workers ended at B; **random** = random proposals, "
        "no early stopping, `--time-budget B`.",
        "- Best by B/4, B/2, B: the median over seeds of the best val acc reported by then (none "
        "yet: 0). Target: the best peer's median best by B. Time to target: when a run's "
        "best-so-far first reaches it, within B (else never); the median over seeds.",
    ]
    if plan.smoke:
        lines += ["", SMOKE_NOTE]
    by = {(r.space, r.method, r.seed): r for r in runs}
    heads = " | ".join(f"best by {_frac(f)}" for f in FRACTIONS)
    for p in plans:
        st = budget_standing(runs, p.space, b)
        lines += ["", f"#### Space `{p.space}` (target {st.target:.4f}, {st.target_from}'s median best by B)",
                  "", "| figure | measured | goal | result |", "|---|---|---|---|"]
        lines += [f"| {a} | {m} | {g} | {Verdict(ok)} |" for a, m, g, ok in goal_rows(st)]
        lines += ["", f"| method | {heads} | median time to target | median trials | median epochs |",
                  "|---|" + "---|" * (len(FRACTIONS) + 3)]
        for m in st.methods:
            cells = " | ".join(f"{x:.4f}" for x in st.best_at[m])
            lines.append(f"| {m} | {cells} | {_s(st.median_ttt[m])} | {st.median_trials[m]:.0f} | "
                         f"{st.median_epochs[m]:.0f} |")
        lines += ["", "Per seed: best by B / time to target / trials / epochs.", "",
                  "| seed | " + " | ".join(st.methods) + " |", "|---|" + "---|" * len(st.methods)]
        for seed in p.seeds:
            cells = [f"{r.best_by(b):.4f} / {_s(st.ttt[m][seed])} / {r.trials} / {r.epochs}"
                     if (r := by.get((p.space, m, seed))) else "-" for m in st.methods]
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    rel = Path(png).resolve().relative_to(Path(doc).resolve().parent) if Path(png).resolve().is_relative_to(
        Path(doc).resolve().parent) else Path(png)
    lines += ["", f"![median best-so-far against wall time, one panel per space]({rel.as_posix()})"]
    return "\n".join(lines)
