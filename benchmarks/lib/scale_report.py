"""The scale benchmark's section of docs/benchmarks.md: figures against the trial count, the
goals, and before/after against a baseline run (the JSON figures of an earlier run)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from benchmarks.lib.common import SMOKE_NOTE, Verdict, describe_data, machine_line
from benchmarks.lib.scale import (
    GOAL_ANALYZE_S,
    GOAL_DISK_KB,
    GOAL_FLAT_S_PER_1000,
    GOAL_OVERHEAD_S,
    GOAL_RESUME_S,
    GOAL_RSS_MB_PER_1000,
)

KEY = "bench_scale"


def _f(x: Any, fmt: str, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:{fmt}}{unit}"


def per_mark(d: dict[str, Any]) -> dict[int, dict[str, float]]:
    """A run's figures (ScaleRun.to_json) by mark: the mark's own and its window's."""
    out: dict[int, dict[str, float]] = {}
    for m in d["marks"]:
        fin = max(1, m["finished"])
        out[m["at"]] = {**m, "disk_kb_per_trial": m["folder_kb"] / fin,
                        "state_kb_per_trial": m["state_kb"] / fin, "db_kb_per_trial": m["db_kb"] / fin}
    for w in d["windows"]:
        if w["last"] in out:
            out[w["last"]].update(overhead_s=w["overhead_s"], overhead_mean_s=w["overhead_mean_s"],
                                  window=f"{w['first']}-{w['last']}", median_trial_s=w["median_trial_s"])
    return out


def goals(d: dict[str, Any]) -> list[tuple[str, str, str, Verdict]]:
    """(figure, measured, goal, verdict) rows of the scale goals."""
    marks = per_mark(d)
    last = marks[max(marks)] if marks else {}
    over = [(k, v["overhead_s"]) for k, v in sorted(marks.items()) if "overhead_s" in v]
    rows: list[tuple[str, str, str, Verdict]] = []
    if over:
        worst = max(over, key=lambda kv: kv[1])
        rows.append(("per-trial overhead, worst window", f"{1000 * worst[1]:.0f} ms (window ending at {worst[0]})",
                     f"<= {1000 * GOAL_OVERHEAD_S:.0f} ms", Verdict(worst[1] <= GOAL_OVERHEAD_S)))
    flat = d.get("flat_growth_s", math.nan)
    if math.isfinite(flat):
        rows.append(("growth of the per-trial overhead", f"{1000 * flat:+.0f} ms per 1,000 trials",
                     f"<= {1000 * GOAL_FLAT_S_PER_1000:.0f} ms per 1,000 (flat)",
                     Verdict(flat <= GOAL_FLAT_S_PER_1000)))
    growth = {int(k): v for k, v in d["rss_growth"].items() if math.isfinite(v)}
    if growth:
        k = max(growth, key=lambda i: growth[i])
        rows.append(("driver RSS growth, worse driver", f"{growth[k]:.0f} MB per 1,000 trials (driver {k})",
                     f"<= {GOAL_RSS_MB_PER_1000:.0f} MB", Verdict(growth[k] <= GOAL_RSS_MB_PER_1000)))
    if last and math.isfinite(last.get("analyze_s", math.nan)):
        rows.append((f"`vidtune analyze` at {last['at']} trials", f"{last['analyze_s']:.1f} s",
                     f"<= {GOAL_ANALYZE_S:.0f} s", Verdict(last["analyze_s"] <= GOAL_ANALYZE_S)))
    if math.isfinite(d.get("resume_s", math.nan)):
        rows.append(("`vidtune resume` to the first new trial", f"{d['resume_s']:.1f} s",
                     f"<= {GOAL_RESUME_S:.0f} s", Verdict(d["resume_s"] <= GOAL_RESUME_S)))
    if last:
        per = max(v["disk_kb_per_trial"] for v in marks.values())
        rows.append(("results folder + optuna.db per finished trial, checkpoints aside (largest)",
                     f"{per:.1f} KB", f"<= {GOAL_DISK_KB:.0f} KB", Verdict(per <= GOAL_DISK_KB)))
    return rows


Cell = Callable[[int, dict[str, float]], str]   # (mark, its figures) -> the table cell


def _col(key: str, fmt: str, unit: str = "", scale: float = 1.0) -> Cell:
    """The cell of one figure of a mark (scaled, e.g. s -> ms), '-' where it is missing."""
    return lambda at, m: _f(scale * m[key] if key in m else None, fmt, unit)


def _table(marks: dict[int, dict[str, float]], columns: list[tuple[str, Cell]]) -> list[str]:
    """A markdown table with one row per mark, in trial-count order."""
    return ["| " + " | ".join(head for head, _ in columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(cell(at, m) for _, cell in columns) + " |"
              for at, m in sorted(marks.items()))]


DRIVER_COLUMNS: list[tuple[str, Cell]] = [
    ("finished trials", lambda at, m: f"{m['finished']} (driver {m['driver']})"),
    ("trials of the window", lambda at, m: str(m.get("window", "-"))),
    ("per-trial overhead (median trial)", _col("overhead_s", ".0f", " ms", 1000)),
    ("(mean trial)", _col("overhead_mean_s", ".0f", " ms", 1000)),
    ("median trial", _col("median_trial_s", ".0f", " ms", 1000)),
    ("snapshot: median / max of the last 20",
     lambda at, m: f"{_col('snapshot_s', '.3f')(at, m)} / {_col('snapshot_max_s', '.3f', ' s')(at, m)}"),
    ("snapshot size", _col("state_kb", ".1f", " MB", 1 / 1024)),
    ("driver RSS", _col("rss_mb", ".0f", " MB")),
    ("driver peak RSS", _col("peak_rss_mb", ".0f", " MB")),
]

DISK_COLUMNS: list[tuple[str, Cell]] = [
    ("finished trials", lambda at, m: str(at)),
    ("results folder per trial (checkpoints aside)", _col("disk_kb_per_trial", ".1f", " KB")),
    ("of which the snapshot", _col("state_kb_per_trial", ".1f", " KB")),
    ("optuna.db per trial", _col("db_kb_per_trial", ".1f", " KB")),
    ("checkpoints", _col("checkpoints_kb", ".1f", " MB", 1 / 1024)),
    ("`vidtune analyze`", _col("analyze_s", ".1f", " s")),
    ("mirror: write per trial", _col("db_write_ms", ".1f", " ms")),
    ("mirror: reconcile", _col("reconcile_s", ".2f", " s")),
]


COMPARED = (   # (label, key in per_mark, format, scale)
    ("per-trial overhead (median trial)", "overhead_s", ".0f", 1000, " ms"),
    ("snapshot, median of 20", "snapshot_s", ".3f", 1, " s"),
    ("snapshot size", "state_kb", ".0f", 1, " KB"),
    ("driver RSS", "rss_mb", ".0f", 1, " MB"),
    ("results folder per trial", "disk_kb_per_trial", ".1f", 1, " KB"),
    ("`vidtune analyze`", "analyze_s", ".1f", 1, " s"),
    ("mirror reconcile", "reconcile_s", ".2f", 1, " s"),
)


def before_after(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A table of the main figures at each mark: before -> after."""
    b, a = per_mark(before), per_mark(after)
    ats = sorted(set(b) & set(a))
    if not ats:
        return []
    lines = ["| figure | " + " | ".join(f"{at} trials" for at in ats) + " |",
             "|---|" + "---|" * len(ats)]
    for label, key, fmt, scale, unit in COMPARED:
        cells = [f"{_f(b[at].get(key, math.nan) * scale, fmt)} -> {_f(a[at].get(key, math.nan) * scale, fmt, unit)}"
                 for at in ats]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    extra = [("driver RSS growth per 1,000 trials (driver 1, 2)",
              lambda d: " / ".join(_f(d["rss_growth"].get(k, math.nan), ".0f") for k in ("1", "2")),
              " MB"),
             ("driver CPU per finished trial (driver 1, 2)",
              lambda d: " / ".join(_f(1000 * d["cpu_per_trial"].get(k, math.nan), ".0f")
                                   for k in ("1", "2")), " ms"),
             ("`vidtune resume` to the first new trial", lambda d: _f(d["resume_s"], ".1f"), " s"),
             ("the last trial's end to the driver's exit", lambda d: _f(d["tail_s"], ".1f"), " s")]
    for label, get, unit in extra:
        lines.append(f"| {label} | {get(before)} -> {get(after)}{unit} |" + " |" * (len(ats) - 1))
    return lines


def _keys_as_text(d: dict[str, Any]) -> dict[str, Any]:
    """JSON turns int keys into text; a fresh run's dicts are made to match."""
    return {**d, **{k: {str(i): v for i, v in d[k].items()} for k in ("rss_growth", "cpu_per_trial",
                                                                   "wall_s", "log_kb", "tpe_ms")}}


def render(d: dict[str, Any], took_s: float, baseline: dict[str, Any] | None = None,
           baseline_note: str = "") -> str:
    """The section, from a run's figures (ScaleRun.to_json) and optionally a baseline's."""
    d = _keys_as_text(d)
    plan = d["plan"]
    marks = per_mark(d)
    data = plan["data"]
    from vidtune.data import DataConfig

    lines = [
        "## Scale: thousands of trials, one driver killed (`benchmarks/bench_scale.py`)",
        "",
        f"*{machine_line()}; the benchmark took {took_s / 60:.1f} min.*",
        "",
    ]
    if d.get("load_start"):
        lines += ["*Load averages (1, 5, 15 min) at the start: "
                  + ", ".join(f"{x:.2f}" for x in d["load_start"])
                  + f" on {plan['slots']} trial slots; above that, other processes shared the "
                  "cores and the timings are slower than the code's own.*", ""]
    if plan["smoke"]:
        lines += [SMOKE_NOTE, ""]
    lines += [
        f"One `vidtune search` of {plan['trials']} trials of the `tiny` space on "
        f"{describe_data(DataConfig(**data))}, up to {plan['max_epochs']} epochs (ASHA grace 1, "
        f"rf 3), embedded Ray with {plan['slots']} CPUs (= trials at once). When "
        f"{plan['kill_at']} trials had finished, the driver and its Ray were SIGKILLed and "
        f"`vidtune resume` ran the rest ({d['resumed_trials']} trials were unfinished at the kill). "
        f"{d['num_trials']} trials in the end, {d['errored']} errored; the drivers ran "
        f"{d['wall_s']['1']:.0f} s and {d['wall_s']['2']:.0f} s.",
        "",
        "Per-trial overhead: wall x slots / trials - the median trial time, over the trials "
        "started since the previous mark, by first start (a trial's time: its trainable's "
        "start to its last report; the wall leaves out the time from the SIGKILL to the resumed "
        "driver's first new trial, which is the resume's figure below). The same with the mean "
        "trial time is what a slot spends per trial beyond the trial itself. Snapshot, RSS and CPU: from the driver's own driver.jsonl "
        "(trainable/tune/stats.py).",
        "",
        "### The driver against the trial count",
        "",
        *_table(marks, DRIVER_COLUMNS),
        "",
        "### Disk and the readers against the trial count",
        "",
        "`vidtune analyze`: a fresh process, on the folder as the first N trials of the snapshot "
        "make it. Mirror: the Optuna mirror writing the first N finished trials into a fresh "
        "SQLite study, and a second mirror restored from the first's state doing what a resumed "
        "driver's first step does (reconcile).",
        "",
        *_table(marks, DISK_COLUMNS),
        "",
        "### Also measured",
        "",
        "- driver RSS growth per 1,000 finished trials (least squares over driver.jsonl): "
        + ", ".join(f"driver {k}: {_f(v, '.1f', ' MB')}" for k, v in d["rss_growth"].items()),
        "- driver CPU per finished trial: "
        + ", ".join(f"driver {k}: {_f(1000 * v, '.0f', ' ms')}" for k, v in d["cpu_per_trial"].items()),
        f"- `vidtune resume`: {_f(d['resume_s'], '.1f', ' s')} from the command's start to the "
        "first new trial's start",
        f"- the last trial's end to the resumed driver's exit: {_f(d['tail_s'], '.1f', ' s')}",
        "- console output of the drivers: " + ", ".join(f"{_f(v, '.0f', ' KB')}" for v in d["log_kb"].values()),
        "- TPE's proposal (the driver's sampler settings, tiny space) over N finished trials: "
        + ", ".join(f"{n}: {_f(ms, '.1f', ' ms')}" for n, ms in d["tpe_ms"].items()),
        f"- one checkpoint of the `default` space's seed model (weights + Adam's moments): "
        f"{d['checkpoint_mb_default']:.1f} MB",
        "",
        "### Goals",
        "",
        "| figure | measured | goal | result |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {v} |" for a, b, c, v in goals(d)],
    ]
    if baseline is not None:
        table = before_after(_keys_as_text(baseline), d)
        if table:
            lines += ["", "### Before and after", ""]
            if baseline_note:
                lines += [baseline_note, ""]
            lines += table
    return "\n".join(lines) + "\n"
