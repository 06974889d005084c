"""The named define-by-run spaces.

A space samples flat, scalar parameters (what Optuna and the results table see); to_hparams()
turns them into the model/train hyperparameters: conv_blocks and conv_base become
conv_widths = (base, 2*base, 4*base, ...), growing channels as in the seed model, and
conv_widths sampled as a string "32-64-128" becomes (32, 64, 128).
"""

from __future__ import annotations

from typing import Any

import optuna

from vidtune.search_spaces._registry import SearchSpace, register

SEED_DEFAULT = {"conv_blocks": 3, "conv_base": 32, "lstm_hidden": 256, "lr": 1e-3}


def default_space(trial: optuna.Trial) -> None:
    """Conv depth and width, LSTM hidden size (around 256) and learning rate."""
    trial.suggest_int("conv_blocks", 2, 3)
    trial.suggest_categorical("conv_base", [16, 32, 48])
    trial.suggest_categorical("lstm_hidden", [128, 256, 384])
    trial.suggest_float("lr", 1e-4, 3e-2, log=True)


def wide_space(trial: optuna.Trial) -> None:
    """The default space plus dropout, weight decay, batch size and LSTM depth."""
    default_space(trial)
    trial.suggest_int("lstm_layers", 1, 2)
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    trial.suggest_categorical("batch_size", [16, 32, 64])


def tiny_space(trial: optuna.Trial) -> None:
    """Very small models for tests and smoke runs."""
    trial.suggest_int("conv_blocks", 1, 2)
    trial.suggest_categorical("conv_base", [4, 8])
    trial.suggest_categorical("lstm_hidden", [16, 32])
    trial.suggest_float("lr", 1e-3, 3e-2, log=True)


def decode_widths(value: Any) -> tuple[int, ...]:
    """conv_widths as sampled: "32-64-128" (a categorical choice) or a sequence of ints."""
    if isinstance(value, str):
        try:
            return tuple(int(w) for w in value.split("-"))
        except ValueError:
            raise ValueError(f"conv_widths is {value!r}; write widths as '32-64-128'") from None
    return tuple(value)


def to_hparams(params: dict[str, Any]) -> dict[str, Any]:
    """Sampled parameters -> keyword arguments for ModelConfig/TrainConfig (see split_params)."""
    out = dict(params)
    if "conv_widths" in out:
        out["conv_widths"] = decode_widths(out["conv_widths"])
    blocks, base = out.pop("conv_blocks", None), out.pop("conv_base", None)
    if (blocks is None) != (base is None):
        raise ValueError(f"conv_blocks ({blocks}) and conv_base ({base}) must be sampled together")
    if blocks is not None:
        out["conv_widths"] = tuple(int(base) * 2**i for i in range(int(blocks)))
    return out


register(SearchSpace("default", default_space.__doc__ or "", default_space, SEED_DEFAULT))
register(SearchSpace("wide", wide_space.__doc__ or "", wide_space,
                     {**SEED_DEFAULT, "lstm_layers": 1, "dropout": 0.0, "weight_decay": 1e-4,
                      "batch_size": 32}))
register(SearchSpace("tiny", tiny_space.__doc__ or "", tiny_space,
                     {"conv_blocks": 2, "conv_base": 8, "lstm_hidden": 32, "lr": 3e-3},
                     constants={"spatial_pool": 2}))
