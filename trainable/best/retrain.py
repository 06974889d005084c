"""Retrain the best configuration of a search from scratch and save it as a model folder.

The trial is picked by vidtune.trainable.tune.experiment.best_trial (the documented rule), its sampled
parameters become configs through trial_configs exactly as in the search, and it trains on
the search's own data config. With the search's seed and max_epochs (the defaults) on CPU,
this reproduces the trial: same initial weights, same batches, same validation accuracy.
On a GPU the random streams are the same too (a trial's checkpoints carry CUDA's generator,
so a resumed trial draws what it would have), but cuDNN's kernels (cudnn.benchmark, atomic
adds in the backward pass) are not bit-exact: expect the accuracy within a few clips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution, IntDistribution

from vidtune.data import DataConfig
from vidtune.search_spaces import trace_space
from vidtune.trainable.best.artifact import (
    CONFIG,
    EXPORTED,
    load_artifact,
    save_exported,
)
from vidtune.trainable.best.standalone import EpochLog, Log, train_model
from vidtune.trainable.core.lease import running_note
from vidtune.trainable.core.results import Best, TrialStatus, best_trial
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.storage import beside_results, is_uri
from vidtune.trainable.core.trial import trial_configs, trial_data
from vidtune.trainable.tune.experiment import Experiment, load_experiment

TRAIN_ON = ("train", "train+val")
RULE = ("rule: among the trials that trained the largest number of epochs, the best final "
        "val_acc (ASHA-stopped trials are only compared with each other if none went further; "
        "diverged and errored trials never count; ties go to the earlier trial)")


@dataclass(frozen=True)
class Choice:
    """The trial retrain picked (core.results.best_trial), and what it was compared with."""

    best: Best              # val_acc: its final val_acc; epoch: the epochs it trained
    num_trials: int
    num_at_budget: int      # usable trials that trained best.epoch epochs (the ones compared)

    def describe(self) -> str:
        b = self.best
        return (f"best trial {b.trial_id} ({b.status}): val_acc {b.val_acc:.4f} after "
                f"{b.epoch} epochs, the best of the {self.num_at_budget} of {self.num_trials} "
                f"trials that trained {b.epoch} epochs\n"
                f"params: {json.dumps(b.params, sort_keys=True)}\n{RULE}")


@dataclass(frozen=True)
class RetrainOutcome:
    choice: Choice
    out: str
    metrics: dict[str, Any]
    train_on: str
    epochs: int
    seed: int
    exported: bool
    reproduces: bool        # same data split, epochs and seed as the trial: same val_acc expected
    mlflow_model: str = ""  # the logged MLflow model's URI (runs:/<id>/model), "" if none


def choose(experiment: Experiment) -> Choice:
    """best_trial's pick, with ints where the space samples ints. ValueError if no epoch yet."""
    trials = experiment.trials
    best = best_trial(trials, experiment.param_names)
    # A column with a NaN (a conditional parameter) holds floats: back to ints where the space
    # samples ints. search_space() refuses a space file changed since the search.
    sampled = trace_space(experiment.config.search_space()).sampled
    ints = {k for k, s in sampled.items() if isinstance(s.distribution, IntDistribution)
            or (isinstance(s.distribution, CategoricalDistribution)
                and all(isinstance(c, int) for c in s.distribution.choices))}
    params = {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v
              for k, v in best.params.items()}
    failed = [s.value for s in TrialStatus if s.failed]
    at_budget = trials[(trials["epochs"] == best.epoch) & ~trials["status"].isin(failed)]
    return Choice(replace(best, params=params), num_trials=len(trials), num_at_budget=len(at_budget))


def retrain_best(results_dir: str | Path, epochs: int | None = None, train_on: str = "train",
                 seed: int | None = None, out: str | Path | None = None, export: bool = True,
                 log: Log | None = None, on_epoch: EpochLog | None = None,
                 mlflow: str | None = None) -> RetrainOutcome:
    """Pick the best trial of a results folder, retrain it from scratch and save a model folder.

    epochs and seed default to the search's max_epochs and seed (reproducing the trial);
    train_on "train+val" trains on every clip. Saves weights, config (with the source trial),
    metrics and, with export, an exported program (model.pt2) to `out`
    (default RESULTS_DIR/best_model). ValueError with a clear message for bad input.
    `log` receives the lines a command prints (the pick, the plan), `on_epoch` each epoch.
    mlflow: a tracking URI to log the model to as an MLflow model (best/mlflow_model.py);
    None: the search's --mlflow, if it had one; "": none.
    """
    log = log or (lambda line: None)
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on is {train_on!r}; use one of {', '.join(TRAIN_ON)}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs is {epochs}, but must be >= 1")
    results_dir = str(results_dir)
    if not is_uri(results_dir) and not Path(results_dir).expanduser().is_dir():
        raise ValueError(f"results folder {results_dir!r} does not exist; pass the folder "
                         "that `vidtune search` printed")
    if not is_uri(results_dir) and not any(Path(results_dir).expanduser().glob("experiment_state-*.json")):
        SearchConfig.load(Path(results_dir).expanduser())   # names a folder that is not a search
        raise ValueError(f"{results_dir} holds no Ray Tune experiment state yet: the search was "
                         "stopped before its first trial started, so there is nothing to retrain")
    experiment = load_experiment(results_dir)
    try:
        choice = choose(experiment)
    except ValueError as exc:
        raise ValueError(f"{experiment.path}: {exc}") from None
    log(choice.describe())
    note = running_note(experiment.path)   # the search runs on: this is its latest snapshot
    if note:
        log(note)
    if TrialStatus(choice.best.status).unfinished:
        log("note: this search has not finished; a later trial may still beat this one")

    cfg = experiment.config
    epochs = cfg.max_epochs if epochs is None else epochs
    seed = cfg.seed if seed is None else seed
    out_path = Path(out if out is not None else beside_results(experiment.path, "best_model"))
    (out_path / EXPORTED).unlink(missing_ok=True)   # never leave a stale program beside new weights
    # num_classes is a placeholder: the training functions set it from the data.
    model_cfg, train_cfg = trial_configs(choice.best.params, cfg, num_classes=2)
    train_cfg = replace(train_cfg, epochs=epochs, seed=seed)
    b = choice.best
    extra = {"source_trial": {"results_dir": experiment.path, "trial_id": b.trial_id,
                              "params": b.params, "val_acc": b.val_acc,
                              "epochs": b.epoch, "status": b.status, "rule": RULE},
             "train_on": train_on}
    log(f"retraining trial {b.trial_id} from scratch: {epochs} epochs, seed {seed}, "
        f"on {'the train split' if train_on == 'train' else 'all clips (train + val)'}")
    metrics = train_model(model_cfg, train_cfg, trial_data(choice.best.params, cfg), out=out_path,
                          extra=extra, log=log,
                          on_epoch=on_epoch, all_clips=train_on == "train+val")

    exported = False
    if export:
        model, config = load_artifact(out_path)
        try:
            save_exported(out_path, model, DataConfig(**config["data"]))
            exported = True
        except Exception as exc:   # the weights are saved: say why there is no program, go on
            log(f"warning: could not export the model ({type(exc).__name__}: {exc}); "
                "the weights are saved and load with load_artifact")
        config["exported_program"] = EXPORTED if exported else None
        (out_path / CONFIG).write_text(json.dumps(config, indent=2))
    reproduces = train_on == "train" and epochs == b.epoch and seed == cfg.seed
    uri = cfg.mlflow if mlflow is None else mlflow
    model_uri = ""
    if uri:
        model_uri = log_to_mlflow(uri, cfg, experiment.path, out_path, metrics,
                                  {**b.params, "train_on": train_on, "epochs": epochs, "seed": seed},
                                  b.trial_id)
        log(f"MLflow model: {model_uri} (val_acc {metrics['val_acc']:.4f}), "
            f"mlflow.pytorch.load_model loads it")
    return RetrainOutcome(choice, str(out_path), metrics, train_on, epochs, seed, exported,
                          reproduces, model_uri)


def log_to_mlflow(uri: str, cfg: SearchConfig, experiment_path: str, out_path: Path,
                  metrics: dict[str, Any], params: dict[str, Any], trial_id: str) -> str:
    """The saved model folder as an MLflow model (best.mlflow_model), traced on a batch
    of 2 clips of the model's own size (B, T, C, H, W)."""
    import torch

    from vidtune.trainable.best.mlflow_model import log_model
    from vidtune.trainable.core.tracking import check_tracking_uri

    check_tracking_uri(uri)
    model, config = load_artifact(out_path)
    data = DataConfig(**config["data"])
    example = torch.rand(2, data.frames, model.cfg.in_channels, data.height, data.width) * 2 - 1
    return log_model(uri, cfg.mlflow_experiment, experiment_path, out_path, model, example,
                              val_acc=float(metrics["val_acc"]), params=params, metrics=metrics,
                              trial_id=trial_id)
