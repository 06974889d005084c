"""Tables, plots and an HTML report of a search's results folder (no Ray imported here:
the folder is read through vidtune.trainable.tune.experiment, lazily, so `analysis.plots` stays light)."""

from vidtune.analysis.analyze import (
    Analysis,
    analyze,
    analyze_experiment,
    analyze_many,
    compare,
    comparison_table,
    load,
    summarize,
    summary_lines,
    write,
)
from vidtune.analysis.importance import (
    Importances,
    build_study,
    param_importances,
    space_distributions,
)
from vidtune.analysis.plots import (
    plot_comparison,
    plot_compute,
    plot_confusion,
    plot_importances,
    plot_learning_curves,
    plot_optimization_history,
    plot_parallel_coordinates,
    plot_params_vs_score,
)
from vidtune.analysis.tables import (
    ComputeUsage,
    asha_milestones,
    best_so_far_by_time,
    best_so_far_by_trial,
    compute_usage,
    status_counts,
)

__all__ = [
    "Analysis",
    "ComputeUsage",
    "Importances",
    "analyze",
    "analyze_experiment",
    "analyze_many",
    "asha_milestones",
    "best_so_far_by_time",
    "best_so_far_by_trial",
    "build_study",
    "compare",
    "comparison_table",
    "compute_usage",
    "load",
    "param_importances",
    "plot_comparison",
    "plot_compute",
    "plot_confusion",
    "plot_importances",
    "plot_learning_curves",
    "plot_optimization_history",
    "plot_parallel_coordinates",
    "plot_params_vs_score",
    "space_distributions",
    "status_counts",
    "summarize",
    "summary_lines",
    "write",
]
