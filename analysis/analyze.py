"""Analyze a results folder (finished, interrupted or still running): tables, plots, report.

load() reads it through vidtune.trainable.tune.experiment (the only place that touches Ray's files);
analyze() computes the summary and writes trials.csv, history.csv, summary.json, the PNGs and
report.html; compare() puts several searches side by side.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vidtune.analysis import plots
from vidtune.analysis.html_report import Section, write_html
from vidtune.analysis.importance import (
    Importances,
    param_importances,
    param_scales,
    space_distributions,
)
from vidtune.analysis.tables import (
    ComputeUsage,
    asha_milestones,
    best_so_far_by_time,
    best_so_far_by_trial,
    compute_usage,
    format_counts,
    gpu_packing,
    status_counts,
)
from vidtune.trainable.core.failures import error_counts
from vidtune.trainable.core.results import Best, TrialStatus, best_reported, best_trial, to_native
from vidtune.trainable.core.storage import beside_results

if TYPE_CHECKING:
    from vidtune.trainable.core.search_config import SearchConfig
    from vidtune.trainable.tune.experiment import Experiment

TRIAL_COLUMNS = ["trial_id", "order", "status", "best_val_acc", "best_epoch", "final_val_acc",
                 "epochs", "time_s", "start", "end"]
PLOTS = {   # file name -> report heading, in report order
    "learning_curves.png": "Learning curves",
    "optimization_history.png": "Optimization history",
    "params.png": "Hyperparameters vs validation accuracy",
    "parallel_coordinates.png": "Parallel coordinates",
    "importances.png": "Parameter importances",
    "compute.png": "Compute: what ASHA saved",
}


def load(path: str | Path) -> Experiment:
    """The results folder as tables; ValueError naming the folder if it is not one."""
    from vidtune.trainable.tune.experiment import load_experiment

    try:
        exp = load_experiment(path)
    except ValueError as exc:               # one line (Ray's messages span several), naming it
        message = " ".join(str(exc).split())
        raise ValueError(message if str(path) in message else f"{path}: {message}") from None
    except (TypeError, KeyError) as exc:   # a vidtune.json from another version
        raise ValueError(f"{path} is not a readable vidtune results folder ({exc!r})") from None
    except FileNotFoundError as exc:
        raise ValueError(f"{path} is not a vidtune results folder ({exc})") from None
    if exp.trials.empty:   # state written before the first trial was created
        columns = TRIAL_COLUMNS[:3] + list(exp.param_names) + TRIAL_COLUMNS[3:]
        exp = replace(exp, trials=pd.DataFrame(columns=columns))
    return exp


@dataclass
class Analysis:
    path: str
    name: str
    config: SearchConfig
    trials: pd.DataFrame
    history: pd.DataFrame
    param_names: tuple[str, ...]
    best: Best | None                    # core.results.best_reported: max val_acc, any epoch
    pick: Best | None                    # core.results.best_trial: what retrain uses
    counts: dict[TrialStatus, int]       # status -> trials
    compute: ComputeUsage
    importances: Importances
    milestones: list[int]                # ASHA rungs (epochs)
    scales: dict[str, str]               # parameter -> 'log', 'linear' or 'categorical'
    out: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return not any(s.unfinished for s in self.counts)

    @property
    def errors(self) -> list[tuple[str, int]]:
        """(one-line error, trials) of the errored trials, most common first."""
        return error_counts(self.trials["error"]) if "error" in self.trials else []


def _pick(exp: Experiment) -> Best | None:
    try:
        return best_trial(exp.trials, exp.param_names)
    except ValueError:   # no trial has finished an epoch yet
        return None


def summarize(exp: Experiment, out: str | Path | None = None, evaluator: Any = None) -> Analysis:
    """All the numbers of the report, nothing written yet."""
    cfg = exp.config
    distributions = space_distributions(cfg.space)   # load() checked the space exists
    importances = param_importances(exp.trials, distributions, evaluator)
    return Analysis(
        path=exp.path, name=cfg.name, config=cfg, trials=exp.trials, history=exp.history,
        param_names=exp.param_names, best=best_reported(exp.trials, exp.history, exp.param_names),
        pick=_pick(exp), counts=status_counts(exp.trials),
        compute=compute_usage(exp.trials, cfg.max_epochs), importances=importances,
        milestones=asha_milestones(cfg.grace_period, cfg.reduction_factor, cfg.max_epochs),
        scales=param_scales(distributions, exp.trials, exp.param_names),
        out=Path(out) if out is not None else beside_results(exp.path, "analysis"),
    )


def _fmt_params(params: dict[str, Any]) -> str:
    return json.dumps({k: to_native(v) for k, v in sorted(params.items())})


def summary_lines(a: Analysis) -> list[str]:
    cfg = a.config
    n = len(a.trials)
    state = "finished" if a.finished else "NOT finished (interrupted or still running)"
    lines = [f"{a.name}: {n} of {cfg.num_samples} trials of space {cfg.space_label!r}, "
             f"up to {cfg.max_epochs} epochs, search {state}"]
    if a.best is None:
        lines.append("best val_acc: none yet (no trial has reported an epoch)")
    else:
        lines.append(f"best val_acc {a.best.val_acc:.4f} (trial {a.best.trial_id}, epoch {a.best.epoch})")
        lines.append(f"  config: {_fmt_params(a.best.params)}")
    if a.pick is None:
        lines.append("retrain pick: none yet")
    else:
        p = a.pick
        lines.append(f"retrain pick: trial {p.trial_id} (final val_acc {p.val_acc:.4f} "
                     f"after {p.epoch} epochs, {TrialStatus(p.status).label})")
        lines.append(f"  config: {_fmt_params(p.params)}")
    lines.append(f"trials: {format_counts(a.counts)}")
    lines += [f"  {count}x {error}" for error, count in a.errors]
    lines.append(f"compute: {compute_text(a)}")
    packing = gpu_packing(a.trials)
    if packing is not None:
        lines.append(f"GPU: {packing}")
    if a.importances.values:
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(a.importances.values.items())[:5])
        lines.append(f"importances: {top}")
    else:
        lines.append(a.importances.note)
    return lines


def compute_text(a: Analysis) -> str:
    c = a.compute
    text = (f"{c.used_epochs} of {c.full_epochs} epochs trained "
            f"({c.num_trials} trials x {c.max_epochs} epochs without ASHA)")
    if not a.finished:
        return text + "; search not finished, so no saving to report yet"
    return text + f": ASHA saved {c.saved_epochs} epochs ({c.saved_fraction:.0%})"


def _trials_for_report(a: Analysis) -> pd.DataFrame:
    cols = ["trial_id", "status", *a.param_names, "best_val_acc", "best_epoch", "final_val_acc",
            "epochs", "time_s", "s_per_epoch", "device", "gpu_share", "gpu_cap_mb", "gpu_peak_mb",
            "error", "warning"]
    df = a.trials.sort_values("order").reindex(columns=cols) if len(a.trials) else pd.DataFrame(columns=cols)
    return df.assign(status=df["status"].map(lambda s: TrialStatus(s).label))


def _report_sections(a: Analysis) -> list[Section]:
    cfg = a.config
    rows = [("results", a.path),
            ("search", f"space {cfg.space_label!r}, {len(a.trials)} of {cfg.num_samples} trials, "
                       f"max {cfg.max_epochs} epochs"
                       + ("" if a.finished else " - NOT finished (interrupted or still running)")),
            ("ASHA", f"grace period {cfg.grace_period}, reduction factor {cfg.reduction_factor:g}, "
                     f"rungs at epochs {a.milestones or 'none'}")]
    if a.best is not None:
        rows += [("best val_acc", f"{a.best.val_acc:.4f} (trial {a.best.trial_id}, "
                                  f"epoch {a.best.epoch})"),
                 ("best config", _fmt_params(a.best.params))]
    else:
        rows.append(("best val_acc", "none yet: no trial has reported an epoch"))
    if a.pick is not None:
        rows += [("retrain pick", f"trial {a.pick.trial_id}: final val_acc "
                                  f"{a.pick.val_acc:.4f} after {a.pick.epoch} epochs "
                                  "(best final val_acc among the trials trained longest)"),
                 ("retrain config", _fmt_params(a.pick.params))]
    rows += [("trials", format_counts(a.counts)),
             *[("errors" if i == 0 else "", f"{count}x {error}") for i, (error, count) in enumerate(a.errors)],
             ("compute", compute_text(a))]
    packing = gpu_packing(a.trials)
    if packing is not None:
        rows.append(("GPU", packing))
    sections = [Section("Summary").pairs(rows)]
    for png, title in PLOTS.items():
        s = Section(title).image(a.files[png], title)
        if png == "importances.png":
            s.text(f"{a.importances.evaluator}, on each trial's best val_acc: "
                   f"{a.importances.note}", css="note")
        if png == "compute.png" and not a.finished:
            s.text("The search is not finished: running and pending trials will add epochs.",
                   css="note")
        sections.append(s)
    sections.append(Section("Trials").table(_trials_for_report(a)))
    return sections


def _json_ready(a: Analysis) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {
        "path": a.path, "name": a.name, "finished": a.finished, "num_trials": len(a.trials),
        "best": None if a.best is None else a.best.to_json(),
        "retrain_pick": None if a.pick is None else a.pick.to_json(),
        "status_counts": {s.value: n for s, n in a.counts.items()},
        "compute": {**asdict(a.compute), "saved_epochs": a.compute.saved_epochs,
                    "saved_fraction": clean(a.compute.saved_fraction)},
        "importances": a.importances.values, "importances_note": a.importances.note,
        "milestones": a.milestones,
        "errors": [{"error": error, "trials": count} for error, count in a.errors],
    }


def write(a: Analysis) -> dict[str, Path]:
    """trials.csv, history.csv, summary.json, the PNGs and report.html under a.out."""
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    files = a.files
    a.trials.to_csv(out / "trials.csv", index=False)
    files["trials.csv"] = out / "trials.csv"
    a.history.to_csv(out / "history.csv", index=False)
    files["history.csv"] = out / "history.csv"
    (out / "summary.json").write_text(json.dumps(_json_ready(a), indent=2, default=to_native))
    files["summary.json"] = out / "summary.json"
    epochs_by_status = (a.trials.groupby("status")["epochs"].sum().astype(int).to_dict()
                        if len(a.trials) else {})
    files["compute.png"] = plots.plot_compute(a.compute, epochs_by_status, out / "compute.png",
                                               finished=a.finished)
    files["learning_curves.png"] = plots.plot_learning_curves(
        a.history, a.trials, a.milestones, a.config.max_epochs, out / "learning_curves.png")
    files["optimization_history.png"] = plots.plot_optimization_history(
        best_so_far_by_trial(a.trials), best_so_far_by_time(a.trials, a.history),
        out / "optimization_history.png")
    files["params.png"] = plots.plot_params_vs_score(a.trials, a.scales, out / "params.png")
    files["parallel_coordinates.png"] = plots.plot_parallel_coordinates(
        a.trials, a.scales, out / "parallel_coordinates.png")
    files["importances.png"] = plots.plot_importances(
        a.importances.values, out / "importances.png", note=a.importances.note,
        evaluator=a.importances.evaluator)
    files["report.html"] = write_html(out / "report.html", f"vidtune search {a.name}",
                                      _report_sections(a))
    return files


def analyze(path: str | Path, out: str | Path | None = None, evaluator: Any = None) -> Analysis:
    """Load a results folder, write everything to out (default RESULTS_DIR/analysis)."""
    return analyze_experiment(load(path), out, evaluator)


def comparison_table(analyses: list[Analysis]) -> pd.DataFrame:
    rows = []
    for a in analyses:
        rows.append({
            "search": a.name, "space": a.config.space_label, "trials": len(a.trials),
            "finished": a.finished,
            "best_val_acc": a.best.val_acc if a.best else math.nan,
            "best_trial": a.best.trial_id if a.best else "",
            "retrain_pick": a.pick.trial_id if a.pick else "",
            "pick_final_val_acc": a.pick.val_acc if a.pick else math.nan,
            "epochs_used": a.compute.used_epochs, "epochs_full": a.compute.full_epochs,
            "saved": a.compute.saved_fraction if a.finished else math.nan,
            "statuses": format_counts(a.counts),
        })
    return pd.DataFrame(rows)


def compare(analyses: list[Analysis], out: str | Path) -> dict[str, Path]:
    """comparison.csv, comparison.png (best-so-far curves) and comparison.html under out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(analyses)
    table.to_csv(out / "comparison.csv", index=False)
    names = [f"{a.name} ({a.config.space_label})" for a in analyses]
    png = plots.plot_comparison(
        {n: best_so_far_by_trial(a.trials) for n, a in zip(names, analyses, strict=True)},
        {n: best_so_far_by_time(a.trials, a.history) for n, a in zip(names, analyses, strict=True)},
        out / "comparison.png")
    shown = table.assign(saved=table["saved"].map(lambda v: "" if math.isnan(v) else f"{v:.0%}"))
    html = write_html(out / "comparison.html", "vidtune searches compared", [
        Section("Best so far").image(png, "best-so-far curves"),
        Section("Searches").table(shown).text(
            "Each search has its own report.html: " + ", ".join(str(a.out) for a in analyses),
            css="note"),
    ])
    return {"comparison.csv": out / "comparison.csv", "comparison.png": png,
            "comparison.html": html}


def _unique_names(analyses_names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in analyses_names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def analyze_many(paths: list[str | Path], out: str | Path | None = None, evaluator: Any = None
                 ) -> tuple[list[Analysis], dict[str, Path]]:
    """Analyze one or more results folders (all loaded first, so a bad one fails before any
    output). One folder: its files go to out (default RESULTS_DIR/analysis). Several: each to
    out/<name> (default RESULTS_DIR/analysis), plus the comparison in out (default the first
    folder's analysis/comparison)."""
    if not paths:
        raise ValueError("no results folder given")
    experiments = [load(p) for p in paths]
    if len(experiments) == 1:
        return [analyze_experiment(experiments[0], out, evaluator)], {}
    names = _unique_names([e.config.name for e in experiments])
    analyses = [analyze_experiment(e, None if out is None else Path(out) / n, evaluator)
                for e, n in zip(experiments, names, strict=True)]
    target = Path(out) if out is not None else analyses[0].out / "comparison"
    return analyses, compare(analyses, target)


def analyze_experiment(exp: Experiment, out: str | Path | None = None, evaluator: Any = None
                       ) -> Analysis:
    a = summarize(exp, out, evaluator)
    write(a)
    return a
