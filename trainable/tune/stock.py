"""Stock Ray Tune, as its documentation teaches it: the peer the benchmarks race vidtune against.

Not used by `vidtune search`. It lives here because it is Ray code (this is the only layer
that imports Ray). What a user would write by hand after the Ray Tune + Optuna guide:
Tuner, OptunaSearch behind a ConcurrencyLimiter, ASHAScheduler with its stock settings (grace
period 1, reduction factor 4) and max_t set to the same epoch budget, one CPU per trial, a
function trainable that reports and checkpoints every epoch. The training itself is
vidtune's run_trial, so both sides train the same model on the same data.
"""

from __future__ import annotations

import time
from typing import Any

from ray import tune
from ray.tune import RunConfig, TuneConfig
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.trial import run_trial
from vidtune.trainable.tune.adapter import report_to_tune

# The `default` space of search_spaces/spaces.py, written the way Tune's docs write spaces.
DEFAULT_PARAM_SPACE: dict[str, Any] = {
    "conv_blocks": tune.randint(2, 4),            # 2 or 3 (the upper bound is exclusive)
    "conv_base": tune.choice([16, 32, 48]),
    "lstm_hidden": tune.choice([128, 256, 384]),
    "lr": tune.loguniform(1e-4, 3e-2),
}
# The `wide` space: the default one plus dropout, weight decay, batch size and LSTM depth.
WIDE_PARAM_SPACE: dict[str, Any] = {
    **DEFAULT_PARAM_SPACE,
    "lstm_layers": tune.randint(1, 3),            # 1 or 2
    "dropout": tune.uniform(0.0, 0.5),
    "weight_decay": tune.loguniform(1e-6, 1e-2),
    "batch_size": tune.choice([16, 32, 64]),
}
PARAM_SPACES = {"default": DEFAULT_PARAM_SPACE, "wide": WIDE_PARAM_SPACE}
REPORT_COLUMNS = ("trial_id", "epoch", "val_acc", "epoch_time_s", "cpu_threads", "reported_at")


def _train(config: dict[str, Any], search: SearchConfig) -> None:
    # Report and checkpoint every epoch, as the docs teach (the same calls as vidtune's adapter).
    run_trial(config, search, lambda metrics, state: report_to_tune(
        {**metrics, "reported_at": time.time()}, state))


def param_space_of(space: str) -> dict[str, Any]:
    """The Tune-style space of a named vidtune space (the ones the race uses)."""
    if space not in PARAM_SPACES:
        raise ValueError(f"stock Ray Tune has no param space for space {space!r}; known: "
                         f"{', '.join(PARAM_SPACES)}")
    return PARAM_SPACES[space]


def run_stock_tune(cfg: SearchConfig, param_space: dict[str, Any] | None = None,
                   max_concurrent: int = 4, time_budget_s: float | None = None) -> list[dict[str, Any]]:
    """Run the stock recipe on cfg's data, epochs, trial count and seed; every report, in order.

    With time_budget_s, TuneConfig's own time budget ends the run (num_samples 0: no cap, as
    Tune's -1). Ray must already be running (the caller starts it the way vidtune's driver does).
    """
    searcher = ConcurrencyLimiter(OptunaSearch(seed=cfg.seed), max_concurrent=max_concurrent)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_train, search=cfg), {"cpu": 1}),
        param_space=param_space or DEFAULT_PARAM_SPACE,
        tune_config=TuneConfig(metric="val_acc", mode="max", search_alg=searcher,
                               scheduler=ASHAScheduler(max_t=cfg.max_epochs),
                               num_samples=cfg.num_samples or -1, time_budget_s=time_budget_s),
        run_config=RunConfig(name=cfg.name, storage_path=cfg.storage_root, verbose=0),
    )
    grid = tuner.fit()
    rows: list[dict[str, Any]] = []
    for i in range(len(grid)):
        df = grid[i].metrics_dataframe
        if df is not None and len(df):
            rows += df.reindex(columns=list(REPORT_COLUMNS)).to_dict("records")
    return sorted(rows, key=lambda r: r["reported_at"])
