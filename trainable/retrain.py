"""Retrain the best configuration of a search from scratch and save it as a model folder.

The trial is picked by trainable.results.best_trial (the documented rule), its sampled
parameters become configs through trial_configs exactly as in the search, and it trains on
the search's own data config. With the search's seed and max_epochs (the defaults) on CPU,
this reproduces the trial: same initial weights, same batches, same validation accuracy.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from data import DataConfig
from search_spaces import get_space
from trainable.artifact import (
    CONFIG,
    EXPORTED,
    load_artifact,
    save_exported,
)
from trainable.results import Experiment, best_trial, load_experiment
from trainable.search import trial_setup
from trainable.search_config import SearchConfig, is_uri
from trainable.standalone import train_model
from trainable.trial import trial_configs

TRAIN_ON = ("train", "train+val")
RULE = ("rule: among the trials that trained the largest number of epochs, the best final "
        "val_acc (ASHA-stopped trials are only compared with each other if none went further; "
        "diverged and errored trials never count; ties go to the earlier trial)")


@dataclass(frozen=True)
class Choice:
    """The trial retrain picked, and why."""

    trial_id: str
    params: dict[str, Any]
    val_acc: float          # its final val_acc, after `epochs` epochs
    epochs: int
    status: str
    num_trials: int
    num_at_budget: int      # trials that reached `epochs` (the ones it was compared with)

    def describe(self) -> str:
        return (f"best trial {self.trial_id} ({self.status}): val_acc {self.val_acc:.4f} after "
                f"{self.epochs} epochs, the best of the {self.num_at_budget} of {self.num_trials} "
                f"trials that trained {self.epochs} epochs\n"
                f"params: {json.dumps(self.params, sort_keys=True)}\n{RULE}")


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


def _native(value: Any, like: Any) -> Any:
    """A pandas cell as a plain Python value, int where the space's default is an int."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(like, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def choose(experiment: Experiment) -> Choice:
    """best_trial's pick as a Choice. ValueError if no trial has finished an epoch."""
    row = best_trial(experiment.trials)
    trials = experiment.trials
    default = get_space(experiment.config.space).default
    params = {name: _native(row[name], default.get(name)) for name in experiment.param_names
              if not (isinstance(row[name], float) and math.isnan(row[name]))}
    at_budget = trials[(trials["epochs"] == row["epochs"])
                       & ~trials["status"].isin(["diverged", "errored"])]
    return Choice(trial_id=str(row["trial_id"]), params=params, val_acc=float(row["final_val_acc"]),
                  epochs=int(row["epochs"]), status=str(row["status"]), num_trials=len(trials),
                  num_at_budget=len(at_budget))


def default_out(results_dir: str) -> str:
    if is_uri(results_dir):
        raise ValueError(f"{results_dir} is remote storage; pass --out DIR for the model folder")
    return str(Path(results_dir).expanduser() / "best_model")


def retrain_best(results_dir: str | Path, epochs: int | None = None, train_on: str = "train",
                 seed: int | None = None, out: str | Path | None = None, quiet: bool = False,
                 export: bool = True, file: TextIO | None = None) -> RetrainOutcome:
    """Pick the best trial of a results folder, retrain it from scratch and save a model folder.

    epochs and seed default to the search's max_epochs and seed (reproducing the trial);
    train_on "train+val" trains on every clip. Saves weights, config (with the source trial),
    metrics and, with export, an exported program (model.pt2) to `out`
    (default RESULTS_DIR/best_model). ValueError with a clear message for bad input.
    """
    file = file or sys.stdout
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
    try:
        experiment = load_experiment(results_dir)
    except ValueError as exc:   # Ray's messages span lines: keep the error on one
        raise ValueError(" ".join(str(exc).split())) from None
    try:
        choice = choose(experiment)
    except ValueError as exc:
        raise ValueError(f"{experiment.path}: {exc}") from None
    print(choice.describe(), file=file)
    if choice.status in ("running", "pending"):
        print("note: this search has not finished; a later trial may still beat this one",
              file=file)

    cfg = experiment.config
    epochs = cfg.max_epochs if epochs is None else epochs
    seed = cfg.seed if seed is None else seed
    setup = trial_setup(cfg)
    out_path = Path(out if out is not None else default_out(experiment.path))
    (out_path / EXPORTED).unlink(missing_ok=True)   # never leave a stale program beside new weights
    # num_classes is a placeholder: the training functions set it from the data.
    model_cfg, train_cfg = trial_configs(choice.params, setup, num_classes=2)
    train_cfg = replace(train_cfg, epochs=epochs, seed=seed)
    extra = {"source_trial": {"results_dir": experiment.path, "trial_id": choice.trial_id,
                              "params": choice.params, "val_acc": choice.val_acc,
                              "epochs": choice.epochs, "status": choice.status, "rule": RULE},
             "train_on": train_on}
    print(f"retraining trial {choice.trial_id} from scratch: {epochs} epochs, seed {seed}, "
          f"on {'the train split' if train_on == 'train' else 'all clips (train + val)'}",
          file=file, flush=True)
    if train_on == "train":
        metrics = train_model(model_cfg, train_cfg, cfg.data, out=out_path, quiet=quiet, extra=extra)
    else:
        metrics = train_model(model_cfg, train_cfg, cfg.data, out=out_path, quiet=quiet, extra=extra,
                              all_clips=True)

    exported = False
    if export:
        model, config = load_artifact(out_path)
        try:
            save_exported(out_path, model, DataConfig(**config["data"]))
            exported = True
        except Exception as exc:   # the weights are saved: say why there is no program, go on
            print(f"warning: could not export the model ({type(exc).__name__}: {exc}); "
                  "the weights are saved and load with load_artifact", file=sys.stderr)
        config["exported_program"] = EXPORTED if exported else None
        (out_path / CONFIG).write_text(json.dumps(config, indent=2))
    reproduces = train_on == "train" and epochs == choice.epochs and seed == cfg.seed
    return RetrainOutcome(choice, str(out_path), metrics, train_on, epochs, seed, exported,
                          reproduces)


def print_retrain(outcome: RetrainOutcome, file: TextIO | None = None) -> None:
    file = file or sys.stdout
    m = outcome.metrics
    if outcome.train_on == "train":
        print(f"final val_acc {m['val_acc']:.4f}"
              + (f" (the trial reported {outcome.choice.val_acc:.4f} with the same epochs "
                 "and seed)" if outcome.reproduces else ""), file=file)
    else:
        print(f"final val_acc {m['val_acc']:.4f}: NOT a held-out number, the val clips were "
              "trained on (--train-on train+val)", file=file)
    files = "weights.pt, config.json, metrics.json" + (f", {EXPORTED}" if outcome.exported else "")
    print(f"model saved to {outcome.out} ({files})", file=file)
