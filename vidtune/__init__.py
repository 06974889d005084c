"""vidtune: hyperparameter search for a CNN-LSTM video classifier (Optuna TPE + Ray Tune + ASHA).

The public API. Everything else lives in the packages mapped into this namespace:

    vidtune.data           synthetic benchmark, PyAV video folders, cached stores, loaders
    vidtune.search_spaces  named Optuna define-by-run spaces
    vidtune.trainable      core/ (model, loop, trial; no Ray), tune/ (Ray), best/ (retrain, models)
    vidtune.analysis       tables, plots and the report of a search
    vidtune.scripts        the `vidtune` command line

The benchmarks sit beside the package, in benchmarks/ (not installed).

    >>> import vidtune
    >>> outcome = vidtune.run_search(vidtune.SearchConfig(space="tiny", num_samples=4))
    >>> exp = vidtune.load_experiment(outcome.experiment_path)
    >>> vidtune.retrain(outcome.experiment_path)

Names are imported on first use, so `import vidtune` starts neither torch nor Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidtune._lazy import lazy_names

if TYPE_CHECKING:
    from vidtune.analysis import Analysis, analyze
    from vidtune.data import DataConfig
    from vidtune.search_spaces import SearchSpace, get_space, list_spaces
    from vidtune.trainable.best import (
        RetrainOutcome,
        evaluate_model,
        load_artifact,
        predict_videos,
        train_model,
    )
    from vidtune.trainable.best import retrain_best as retrain
    from vidtune.trainable.core import (
        Best,
        ModelConfig,
        SearchConfig,
        TrainConfig,
        TrialStatus,
        best_trial,
    )
    from vidtune.trainable.tune.driver import SearchOutcome, resume_search, run_search
    from vidtune.trainable.tune.experiment import Experiment, load_experiment

__version__ = "0.1.0"

_WHERE = {   # public name -> (module, attribute)
    "Analysis": ("vidtune.analysis", "Analysis"),
    "analyze": ("vidtune.analysis", "analyze"),
    "DataConfig": ("vidtune.data", "DataConfig"),
    "SearchSpace": ("vidtune.search_spaces", "SearchSpace"),
    "get_space": ("vidtune.search_spaces", "get_space"),
    "list_spaces": ("vidtune.search_spaces", "list_spaces"),
    "RetrainOutcome": ("vidtune.trainable.best", "RetrainOutcome"),
    "evaluate_model": ("vidtune.trainable.best", "evaluate_model"),
    "load_artifact": ("vidtune.trainable.best", "load_artifact"),
    "predict_videos": ("vidtune.trainable.best", "predict_videos"),
    "retrain": ("vidtune.trainable.best", "retrain_best"),
    "train_model": ("vidtune.trainable.best", "train_model"),
    "Best": ("vidtune.trainable.core", "Best"),
    "ModelConfig": ("vidtune.trainable.core", "ModelConfig"),
    "SearchConfig": ("vidtune.trainable.core", "SearchConfig"),
    "TrainConfig": ("vidtune.trainable.core", "TrainConfig"),
    "TrialStatus": ("vidtune.trainable.core", "TrialStatus"),
    "best_trial": ("vidtune.trainable.core", "best_trial"),
    "SearchOutcome": ("vidtune.trainable.tune.driver", "SearchOutcome"),
    "resume_search": ("vidtune.trainable.tune.driver", "resume_search"),
    "run_search": ("vidtune.trainable.tune.driver", "run_search"),
    "Experiment": ("vidtune.trainable.tune.experiment", "Experiment"),
    "load_experiment": ("vidtune.trainable.tune.experiment", "load_experiment"),
}

__all__ = [
    "Analysis",
    "Best",
    "DataConfig",
    "Experiment",
    "ModelConfig",
    "RetrainOutcome",
    "SearchConfig",
    "SearchOutcome",
    "SearchSpace",
    "TrainConfig",
    "TrialStatus",
    "analyze",
    "best_trial",
    "evaluate_model",
    "get_space",
    "list_spaces",
    "load_artifact",
    "load_experiment",
    "predict_videos",
    "resume_search",
    "retrain",
    "run_search",
    "train_model",
]


__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__, globals())
