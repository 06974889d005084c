"""PNG plots of a search (matplotlib, Agg canvas: no display, no pyplot global state).

Every function takes plain tables, writes one PNG and returns its path. An empty table gives
a figure that says so instead of an error, so an early or interrupted search still plots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from vidtune.analysis.tables import ComputeUsage, trial_scores
from vidtune.trainable.core.results import TrialStatus

STATUS_COLORS = {
    TrialStatus.COMPLETED: "#2ca02c",
    TrialStatus.STOPPED: "#ff7f0e",
    TrialStatus.DIVERGED: "#d62728",
    TrialStatus.ERRORED: "#7f3f98",
    TrialStatus.RUNNING: "#1f77b4",
    TrialStatus.PENDING: "#7f7f7f",
}
_RNG_SEED = 0   # strip-plot jitter, fixed so reruns give identical images


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, png: str | Path) -> Path:
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, format="png")
    return png


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _pad_limits(lim: tuple[float, float]) -> tuple[float, float]:
    """A little headroom below and above, so points on the edge are not hidden by a legend."""
    lo, hi = lim
    pad = 0.08 * (hi - lo or 1)
    return lo - pad, hi + pad


def _time_unit(elapsed_s: pd.Series) -> tuple[float, str]:
    """Seconds for short searches, minutes up to three hours, hours beyond."""
    top = float(elapsed_s.max()) if len(elapsed_s) else 0.0
    return (1.0, "s") if top < 180 else (60.0, "min") if top < 3 * 3600 else (3600.0, "h")


def _status_legend(ax: Axes, statuses: Sequence[str], **kwargs: Any) -> None:
    handles = [Line2D([], [], color=STATUS_COLORS[s], marker="o", label=s.label)
               for s in TrialStatus if s in set(statuses)]
    if handles:
        ax.legend(handles=handles, fontsize=8, **kwargs)


def plot_confusion(confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str],
                   png_path: str | Path) -> Path:
    """Confusion matrix counts, rows = true class, columns = predicted (confusion[true][pred])."""
    cm = np.asarray(confusion, dtype=float)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion has shape {cm.shape}, but {n} class names were given")
    size = max(4.0, 0.45 * n + 2.5)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8, label="clips")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        top = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > top / 2 else "black")
    total = cm.sum()
    acc = np.trace(cm) / total if total else 0.0
    ax.set_title(f"confusion matrix (accuracy {acc:.3f})")
    return _save(fig, png_path)


TOP_K = 20   # learning curves drawn one by one; the other trials' reports go into a density


def _curve_density(ax: Axes, rest: pd.DataFrame, top_epoch: int) -> None:
    """The reports of the trials not drawn as lines: per epoch, how many trials reported each
    val_acc (a 2D histogram, one artist however many trials there are)."""
    x_edges = np.arange(0.5, top_epoch + 1.0)
    y_edges = np.linspace(0.0, 1.0, 41)
    counts, _, _ = np.histogram2d(rest["epoch"].to_numpy(float), rest["val_acc"].to_numpy(float),
                                  bins=(x_edges, y_edges))
    if not counts.any():
        return
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(counts.T, 0), cmap="Greys",
                         norm=LogNorm(vmin=1, vmax=max(2.0, counts.max())), alpha=0.8, zorder=0)
    ax.figure.colorbar(mesh, ax=ax, pad=0.01, label="other trials' reports per cell")


def split_curves(history: pd.DataFrame, top_k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reports of the top_k trials by their best val_acc, reports of the others); ties go to
    the earlier trial in the table. With top_k trials or fewer, all are drawn."""
    if not len(history) or history["trial_id"].nunique() <= top_k:
        return history, history.iloc[:0]
    best = history.groupby("trial_id", sort=False)["val_acc"].max().nlargest(top_k, keep="first").index
    keep = history["trial_id"].isin(best)
    return history[keep], history[~keep]


def plot_learning_curves(history: pd.DataFrame, trials: pd.DataFrame, milestones: Sequence[int],
                         max_epochs: int, png_path: str | Path, top_k: int = TOP_K) -> Path:
    """val_acc vs epoch, one line per trial colored by status; ASHA rungs as dashed lines.

    Beyond top_k trials, only the top_k with the best val_acc are lines; the reports of the
    rest are a grey density behind them (a line per trial makes thousands of artists, slow
    to draw and impossible to read)."""
    fig = _figure(8, 4.8)
    ax = fig.add_subplot()
    status = dict(zip(trials["trial_id"], trials["status"], strict=True)) if len(trials) else {}
    h = history.dropna(subset=["val_acc"]) if len(history) else history
    drawn, rest = split_curves(h, top_k)
    if len(rest):
        _curve_density(ax, rest, max(max_epochs, int(h["epoch"].max())))
    for trial_id, df in (drawn.groupby("trial_id", sort=False) if len(drawn) else []):
        s = status.get(trial_id, TrialStatus.PENDING)
        df = df.sort_values("epoch")
        ax.plot(df["epoch"], df["val_acc"], color=STATUS_COLORS[s], marker="o", markersize=3,
                linewidth=1.2, alpha=0.75)
        if s == TrialStatus.DIVERGED:
            last = df.iloc[-1]
            ax.plot(last["epoch"], last["val_acc"], marker="x", color=STATUS_COLORS[s], markersize=8)
    for i, m in enumerate(milestones):
        ax.axvline(m, color="0.35", linestyle="--", linewidth=1)
        ax.annotate(f"rung {i}", (m, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color="0.35")
    if not len(h):
        _empty(ax, "no epoch reported yet")
    else:
        ax.set_xlim(0.8, max(max_epochs, int(h["epoch"].max())) + 0.2)
        ax.xaxis.get_major_locator().set_params(integer=True)  # type: ignore[call-arg]
        handles = [Line2D([], [], color=STATUS_COLORS[s], marker="o", label=s.label)
                   for s in TrialStatus if s in {status.get(t, TrialStatus.PENDING)
                                                 for t in drawn["trial_id"].unique()}]
        if milestones:
            handles.append(Line2D([], [], color="0.35", linestyle="--",
                                  label="ASHA rung milestones"))
        ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    n = len(status)
    shown = drawn["trial_id"].nunique() if len(drawn) else 0
    title = f"learning curves ({n} trial{'s' if n != 1 else ''})"
    if len(h) and shown < h["trial_id"].nunique():
        title = f"learning curves: the best {shown} of {n} trials; the others as a density"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, png_path)


def plot_optimization_history(by_trial: pd.DataFrame, by_time: pd.DataFrame,
                              png_path: str | Path) -> Path:
    """Best-so-far val_acc against trial order (left) and wall time (right).

    by_trial: order, status, best_val_acc, best_so_far; by_time: elapsed_s, val_acc, best_so_far
    (see analysis.tables.best_so_far_by_trial / best_so_far_by_time).
    """
    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    ok = by_trial.dropna(subset=["best_val_acc"]) if len(by_trial) else by_trial
    if len(ok):
        left.scatter(ok["order"] + 1, ok["best_val_acc"], c=[STATUS_COLORS[s] for s in ok["status"]],
                     s=25, zorder=3, label=None)
        left.step(by_trial["order"] + 1, by_trial["best_so_far"], where="post", color="black",
                  linewidth=1.5, label="best so far")
        left.xaxis.get_major_locator().set_params(integer=True)
        handles = [Line2D([], [], color="black", label="best so far")]
        handles += [Line2D([], [], color=STATUS_COLORS[s], marker="o", linestyle="",
                           label=f"trial best ({s.label})")
                    for s in TrialStatus if s in set(ok["status"])]
        left.legend(handles=handles, fontsize=8, loc="best")
    else:
        _empty(left, "no trial reported yet")
    if len(by_trial):
        left.set_xlim(0.5, len(by_trial) + 0.5)
    left.set_xlabel("trial (creation order)")
    left.set_ylim(*_pad_limits(left.get_ylim()))
    left.set_ylabel("validation accuracy")
    left.set_title("best so far vs trials")
    scale, unit = _time_unit(by_time["elapsed_s"] if len(by_time) else pd.Series(dtype=float))
    if len(by_time):
        minutes = by_time["elapsed_s"] / scale
        right.scatter(minutes, by_time["val_acc"], s=10, color="0.6", label="epoch reports")
        right.step(minutes, by_time["best_so_far"], where="post", color="black", linewidth=1.5,
                   label="best so far")
        right.legend(fontsize=8, loc="best")
    else:
        _empty(right, "no epoch reported yet")
    right.set_xlabel(f"wall time since the first trial started ({unit})")
    right.set_title("best so far vs wall time")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(fig, png_path)


def _categorical_positions(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    labels = sorted(values.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    index = {v: i for i, v in enumerate(labels)}
    return np.array([index.get(v, np.nan) for v in values], dtype=float), [str(v) for v in labels]


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(max_cols, max(1, n))
    return math.ceil(max(1, n) / cols), cols


def plot_params_vs_score(trials: pd.DataFrame, scales: Mapping[str, str],
                         png_path: str | Path) -> Path:
    """Each parameter against the trial's best val_acc; log axis for log-sampled ones,
    strip plots (jittered) for categorical and small integer ranges; colored by status."""
    names = list(scales)
    rows, cols = _grid(len(names))
    fig = _figure(4.2 * cols, 3.3 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    score = trial_scores(trials) if len(trials) else pd.Series(dtype=float)
    ok = score.notna()
    rng = np.random.default_rng(_RNG_SEED)
    for ax, name in zip(axes, names, strict=False):
        x_raw = trials.loc[ok, name] if len(trials) else pd.Series(dtype=float)
        y = score[ok]
        colors = [STATUS_COLORS[s] for s in trials.loc[ok, "status"]] if len(trials) else []
        values = x_raw.dropna().unique()
        strip = scales[name] == "categorical" or (
            pd.api.types.is_integer_dtype(x_raw) and len(values) <= 8)
        if not len(y):
            _empty(ax, "no trial reported yet")
        elif strip:
            pos, labels = _categorical_positions(x_raw)
            ax.scatter(pos + rng.uniform(-0.15, 0.15, len(pos)), y, c=colors, s=30, alpha=0.85)
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlim(-0.6, len(labels) - 0.4)
        else:
            ax.scatter(x_raw.astype(float), y, c=colors, s=30, alpha=0.85)
            if scales[name] == "log":
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
                if x_raw.astype(float).max() / x_raw.astype(float).min() < 100:
                    # less than two decades: label 1-2-5 steps, not just the powers of ten
                    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.set_xlabel(name + (" (log)" if scales[name] == "log" else ""))
        ax.set_ylabel("best val acc")
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if not names:
        _empty(axes[0], "the search space has no parameters")
    elif len(trials):
        _status_legend(axes[0], list(trials.loc[ok, "status"]), loc="best")
    fig.suptitle("hyperparameters vs best validation accuracy")
    return _save(fig, png_path)


def _axis_values(values: pd.Series, scale: str) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Values mapped to [0, 1] for a parallel-coordinates axis, and its (position, label) ticks."""
    if scale == "categorical" or not pd.api.types.is_numeric_dtype(values):
        pos, labels = _categorical_positions(values)
        span = max(1, len(labels) - 1)
        ticks = [(i / span if len(labels) > 1 else 0.5, lab) for i, lab in enumerate(labels)]
        return (pos / span if len(labels) > 1 else pos * 0 + 0.5), ticks
    v = values.astype(float).to_numpy()
    t = np.log10(v) if scale == "log" else v
    lo, hi = np.nanmin(t), np.nanmax(t)
    if not np.isfinite(lo) or hi == lo:
        return np.full(len(v), 0.5), [(0.5, f"{np.nanmin(v):.3g}")]
    scaled = (t - lo) / (hi - lo)
    uniques = np.unique(v[np.isfinite(v)])
    if pd.api.types.is_integer_dtype(values) and len(uniques) <= 6:
        marks = np.log10(uniques) if scale == "log" else uniques.astype(float)
        return scaled, [((m - lo) / (hi - lo), f"{int(u)}") for m, u in zip(marks, uniques, strict=True)]
    marks = np.linspace(lo, hi, 3)
    ticks = [((m - lo) / (hi - lo), f"{(10**m if scale == 'log' else m):.3g}") for m in marks]
    return scaled, ticks


def plot_parallel_coordinates(trials: pd.DataFrame, scales: Mapping[str, str],
                              png_path: str | Path) -> Path:
    """One line per trial across the parameter axes and a final val-acc axis, colored by it."""
    names = list(scales)
    fig = _figure(max(6.0, 1.9 * (len(names) + 1) + 1.5), 4.6)
    ax = fig.add_subplot()
    score = trial_scores(trials) if len(trials) else pd.Series(dtype=float)
    ok = trials[score.notna()] if len(trials) else trials
    if not len(ok) or not names:
        _empty(ax, "no trial reported yet" if names else "the search space has no parameters")
        return _save(fig, png_path)
    columns = [*names, "best val acc"]
    y = score[ok.index].to_numpy(dtype=float)
    lo, hi = float(np.min(y)), float(np.max(y))
    norm = Normalize(vmin=lo, vmax=hi) if hi > lo else Normalize(vmin=lo - 0.05, vmax=hi + 0.05)
    cmap = "viridis"
    mapped, ticks = [], []
    for name in names:
        m, t = _axis_values(ok[name], scales[name])
        mapped.append(m)
        ticks.append(t)
    m, t = _axis_values(pd.Series(y), "linear")
    mapped.append(m)
    ticks.append(t)
    data = np.vstack(mapped).T              # (trials, axes)
    sm = ScalarMappable(norm=norm, cmap=cmap)
    xs = np.arange(len(columns))
    # One artist for all trials (a line each would be thousands of artists), best drawn last.
    ranked = np.argsort(y, kind="stable")
    ax.add_collection(LineCollection([np.column_stack([xs, data[i]]) for i in ranked],
                                     colors=sm.to_rgba(y[ranked]), linewidths=1.6, alpha=0.85))
    for i, axis_ticks in enumerate(ticks):
        ax.axvline(i, color="0.3", linewidth=1)
        for pos, label in axis_ticks:
            ax.annotate(label, (i, pos), xytext=(4, 0), textcoords="offset points", fontsize=8,
                        va="center", color="0.15",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
    ax.set_xticks(xs, [c + (" (log)" if scales.get(c) == "log" else "") for c in columns])
    ax.set_xlim(-0.2, len(columns) - 0.4)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(sm, ax=ax, label="best validation accuracy", pad=0.01)
    ax.set_title(f"parallel coordinates ({len(ok)} trial{'s' if len(ok) != 1 else ''})")
    return _save(fig, png_path)


def plot_importances(importances: Mapping[str, float], png_path: str | Path,
                     note: str = "", evaluator: str = "") -> Path:
    """Horizontal bars, most important on top; a note instead when there is nothing to show."""
    fig = _figure(6.5, max(2.5, 0.5 * len(importances) + 1.5))
    ax = fig.add_subplot()
    if importances:
        names = list(importances)[::-1]
        values = [importances[n] for n in names]
        bars = ax.barh(names, values, color="#1f77b4")
        ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
        ax.set_xlim(0, max(values) * 1.18 if max(values) > 0 else 1)
        ax.set_xlabel("importance (sums to 1)")
        ax.grid(axis="x", alpha=0.3)
    else:
        _empty(ax, note or "no importances")
    title = "parameter importances" + (f" ({evaluator})" if evaluator else "")
    ax.set_title(title, fontsize=10)
    if importances and note:
        fig.supxlabel(note, fontsize=7, color="0.4")
    return _save(fig, png_path)


def plot_compute(usage: ComputeUsage, epochs_by_status: Mapping[str, int],
                 png_path: str | Path, finished: bool = True) -> Path:
    """Epochs trained (stacked by trial status) against every trial trained to max_epochs."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    ax.barh(1, usage.full_epochs, color="0.8",
            label=f"{usage.num_trials} trials x {usage.max_epochs} epochs")
    left = 0
    for s in TrialStatus:
        n = epochs_by_status.get(s, 0)
        if n:
            ax.barh(0, n, left=left, color=STATUS_COLORS[s], label=f"{s.label} ({n})")
            left += n
    ax.set_yticks([0, 1], ["used (ASHA)", "without ASHA"])
    ax.set_xlabel("epochs trained, summed over trials")
    ax.set_xlim(0, max(1, usage.full_epochs) * 1.02)
    saved = (f"ASHA saved {usage.saved_epochs} ({usage.saved_fraction:.0%})" if finished
             else "search not finished")
    ax.set_title(f"compute: {usage.used_epochs} of {usage.full_epochs} epochs, {saved}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, png_path)


def plot_comparison(by_trial: Mapping[str, pd.DataFrame], by_time: Mapping[str, pd.DataFrame],
                    png_path: str | Path) -> Path:
    """Best-so-far val_acc of several searches, one line each, against trials run (left;
    analysis.tables.best_so_far_by_trial frames) and wall time (right; best_so_far_by_time)."""
    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    frames = [df["elapsed_s"] for df in by_time.values() if len(df)]
    scale, unit = _time_unit(pd.concat(frames) if frames else pd.Series(dtype=float))
    for ax, curves, x_of in ((left, by_trial, lambda df: df["order"] + 1),
                             (right, by_time, lambda df: df["elapsed_s"] / scale)):
        drawn = 0
        for i, (name, df) in enumerate(curves.items()):
            ok = df.dropna(subset=["best_so_far"]) if len(df) else df
            if len(ok):
                ax.plot(x_of(ok), ok["best_so_far"], drawstyle="steps-post", marker="o",
                        markersize=3, linewidth=1.8, label=name, color=f"C{i}")
                drawn += 1
        if drawn:
            ax.legend(fontsize=8, loc="best")
        else:
            _empty(ax, "no trial reported yet")
        ax.grid(alpha=0.3)
    left.xaxis.get_major_locator().set_params(integer=True)
    left.set_xlabel("trials run")
    left.set_ylabel("best validation accuracy so far")
    left.set_title("searches compared: vs trials")
    right.set_xlabel(f"wall time since the first trial started ({unit})")
    right.set_title("searches compared: vs wall time")
    return _save(fig, png_path)
