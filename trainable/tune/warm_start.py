"""Warm start: the finished trials of earlier searches, handed to TPE before its first proposal.

Which value TPE gets for each earlier trial: its final val_acc, as a COMPLETE trial, also for
a trial ASHA stopped at a rung (its val_acc there). That is exactly what Ray's OptunaSearch
tells the study about the new search's own trials (on_trial_complete with the last result,
state COMPLETE, for stopped trials too), so old and new trials sit on one scale. As PRUNED
trials, Optuna's TPE would rank every stopped trial below every completed one, and the
earlier search's stopped trials below the new search's, which are told as COMPLETE. A
diverged trial counts as 0 (what it reported): TPE learns to avoid its region. Errored and
unfinished trials are left out. The per-epoch val_acc goes along as intermediate values.

`--warm-start-use` (SearchConfig.warm_start_use) chooses what TPE takes: 'all' (the default)
as above; 'full', only the trials that trained all their epochs (TPE then keeps most of its
random start-up trials, and no early-rung accuracy stands for a config); 'explore', all of
them, and TPE's random start-up trials run as in a cold search (make_searcher raises
n_startup_trials by the warm trials). docs/benchmarks.md compares the three.

Parameters the new space does not sample, or values outside its ranges and choices, are
dropped with a note (TPE treats such a trial as one that did not sample the parameter). An
earlier search on another data set or clip size is used, with a warning.

The first trial of a warm-started search is the earlier searches' best configuration (the
space's first trial fills in what it did not sample), not the seed configuration: the
earlier value of the seed configuration is known to TPE already, and the best one is the
configuration most worth confirming under the new seed. docs/benchmarks.md measures both.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna

from vidtune.search_spaces import space_distributions
from vidtune.trainable.core.results import TrialStatus
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.space_check import contains
from vidtune.trainable.tune.experiment import Experiment, load_experiment, read_trial_records

WARM_ATTR = "warm_start"      # user attr of a warm trial: the folder it came from
DATASET = ("source", "num_clips", "noise", "seed", "val_fraction")
CLIP = ("frames", "height", "width")


@dataclass(frozen=True)
class WarmStart:
    trials: tuple[optuna.trial.FrozenTrial, ...] = ()
    notes: tuple[str, ...] = ()                       # printed before the search starts
    tried: tuple[dict[str, Any], ...] = ()            # configs whose rerun would repeat exactly

    def best_params(self) -> dict[str, Any]:
        """The parameters of the earlier trial with the highest value ({} without trials):
        the configuration a warm-started search tries first (make_searcher)."""
        if not self.trials:
            return {}
        return dict(max(self.trials, key=lambda t: t.value if t.value is not None else -math.inf).params)

    def has_tried(self, first: dict[str, Any]) -> bool:
        """Whether an earlier search ran this first trial exactly as this search would: same
        data, epochs, seed and batch size (deterministic on CPU), and every parameter the trial
        sampled set alike in `first` (a partial first trial samples the rest anew, so it is no
        repeat). With another seed the same config trains differently: it runs again."""
        return bool(first) and any(all(k in first and first[k] == v for k, v in t.items())
                                   for t in self.tried)


def _experiment(path: str) -> Experiment:
    try:
        return load_experiment(path)
    except ValueError as exc:
        raise ValueError(f"warm start: {exc}") from None


def differences(old: SearchConfig, new: SearchConfig) -> list[str]:
    """How an earlier search's benchmark differs from this one's, in words."""
    out = []
    data = [f"{k} {getattr(old.data, k)!r} (now {getattr(new.data, k)!r})" for k in DATASET
            if getattr(old.data, k) != getattr(new.data, k)]
    clip = [f"{k} {getattr(old.data, k)} (now {getattr(new.data, k)})" for k in CLIP
            if getattr(old.data, k) != getattr(new.data, k)]
    if data:
        out.append("a different dataset: " + ", ".join(data))
    if clip:
        out.append("another clip size: " + ", ".join(clip))
    if old.max_epochs != new.max_epochs:
        out.append(f"max_epochs {old.max_epochs} (now {new.max_epochs})")
    return out


def load_warm_start(cfg: SearchConfig) -> WarmStart:
    """The earlier searches' finished trials as Optuna trials over `cfg`'s space. ValueError,
    before Ray starts, if a folder is not a search."""
    if not cfg.warm_start:
        return WarmStart()
    distributions = space_distributions(cfg.space)
    trials: list[optuna.trial.FrozenTrial] = []
    notes: list[str] = []
    tried: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for path in cfg.warm_start:
        exp = _experiment(path)
        differ = differences(exp.config, cfg)
        if differ:
            notes.append(f"warning: warm start from {exp.path}, which searched "
                         f"{'; '.join(differ)}: its accuracies may not carry over")
        configs = {r.trial_id: r.config for r in read_trial_records(exp.path)}
        repeats = not differ and (exp.config.seed, exp.config.batch_size) == (cfg.seed, cfg.batch_size)
        for row in exp.trials.to_dict("records"):
            status = TrialStatus(row["status"])
            final = float(row["final_val_acc"])
            if status.unfinished or status is TrialStatus.ERRORED or math.isnan(final):
                skipped[status.value] += 1
                continue
            if cfg.warm_start_use == "full" and int(row["epochs"]) < exp.config.max_epochs:
                skipped[f"stopped before epoch {exp.config.max_epochs} (--warm-start-use full)"] += 1
                continue
            params, config = {}, configs[row["trial_id"]]
            for name, value in config.items():
                if name not in distributions:
                    dropped[name] += 1
                elif not contains(distributions[name], value):
                    outside[name] += 1
                else:
                    params[name] = value
            if not params:
                skipped["with no parameter in this space"] += 1
                continue
            history = exp.history[exp.history["trial_id"] == row["trial_id"]]
            steps = {int(e): float(v) for e, v in zip(history["epoch"], history["val_acc"], strict=True)
                     if math.isfinite(float(v))}
            trials.append(optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE,
                value=0.0 if status is TrialStatus.DIVERGED else final,
                params=params, distributions={k: distributions[k] for k in params},
                intermediate_values=steps,
                user_attrs={WARM_ATTR: exp.path, "ray_trial_id": row["trial_id"],
                            "status": status.value},
            ))
            if repeats and params == config:
                tried.append(params)
    notes.insert(0, f"warm start: {len(trials)} finished trials from {len(cfg.warm_start)} "
                    f"earlier search{'es' if len(cfg.warm_start) > 1 else ''}")
    if dropped:
        notes.append("note: parameters this space does not sample, dropped: "
                     + ", ".join(f"{k} ({n} trials)" for k, n in sorted(dropped.items())))
    if outside:
        notes.append("note: values outside this space's ranges or choices, dropped: "
                     + ", ".join(f"{k} ({n} trials)" for k, n in sorted(outside.items())))
    if skipped:
        notes.append("note: trials left out: "
                     + ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))
    return WarmStart(tuple(trials), tuple(notes), tuple(tried))
