"""What a trial computes in (core/precision.py): the rule from device class and CPU capability,
the LSTM's own dtype under autocast (issue 23), and the choice reaching the loop and the
reports. (A resume in each precision: tests/test_loop.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vidtune.data import make_loaders
from vidtune.trainable.core import ModelConfig, SearchConfig, TrainConfig, build_model, fit
from vidtune.trainable.core import precision as precision_module
from vidtune.trainable.core.precision import LSTM_DTYPE, Precision, choose_precision
from vidtune.trainable.core.trial import run_trial

CPU = torch.device("cpu")
TINY = ModelConfig(conv_widths=(4, 8), lstm_hidden=8, spatial_pool=2)


@pytest.mark.parametrize(("units", "expected"), [
    (("amx_bf16", "avx512_bf16"), "bf16"), (("avx512_bf16",), "bf16"), (("amx_bf16",), "bf16"),
    ((), "fp32")])
def test_auto_on_the_cpu_follows_its_bf16_units(monkeypatch, units, expected):
    monkeypatch.setattr(precision_module, "cpu_bf16_units", lambda: units)
    chosen = choose_precision("auto", CPU)
    assert chosen.name == expected
    assert all(u in chosen.reason for u in units)


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_the_card(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert choose_precision("auto", torch.device("cuda", 0)).name == expected


def test_an_explicit_precision_is_kept_on_any_device(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_bf16_units", lambda: ())
    for device in (CPU, torch.device("cuda", 0)):
        assert choose_precision("bf16", device) == Precision("bf16", "asked for")
        assert choose_precision("fp32", device).dtype == torch.float32


def test_a_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match=r"precision is 'fp16'; known: auto, bf16, fp32"):
        choose_precision("fp16", CPU)
    with pytest.raises(ValueError, match="precision is 'half'"):
        TrainConfig(precision="half")
    with pytest.raises(ValueError, match="precision is 'bfloat'"):
        SearchConfig(precision="bfloat")


class OpDtypes(TorchDispatchMode):
    """Records the floating dtypes of the tensors each aten op (below autocast) receives."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        tensors += [t for a in args if isinstance(a, list | tuple) for t in a
                    if isinstance(t, torch.Tensor)]
        dtypes = {t.dtype for t in tensors if t.is_floating_point()}
        self.seen.setdefault(str(func.overloadpacket.__name__), set()).update(dtypes)
        return func(*args, **(kwargs or {}))

    def of(self, *words: str) -> set[torch.dtype]:
        return {d for name, ds in self.seen.items() if any(w in name for w in words) for d in ds}


def test_under_bf16_autocast_the_lstm_computes_in_its_own_dtype():
    model = build_model(TINY, seed=0).train()
    clips = torch.randn(2, 3, 3, 16, 16)                      # (B, T, C, H, W)
    bf16 = choose_precision("bf16", CPU)
    with OpDtypes() as ops, bf16.autocast(CPU):
        out = model(clips)
    assert ops.of("lstm", "rnn") == {LSTM_DTYPE}, ops.seen     # the recurrent op's inputs
    assert torch.bfloat16 in ops.of("convolution"), ops.seen    # while the CNN runs in bf16
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.lstm.parameters())

    # The control: the same LSTM called under autocast directly computes in bf16, so the
    # assertion above can fail.
    feats = torch.randn(2, 3, model.feature_dim)               # (B, T, F)
    with OpDtypes() as ops, bf16.autocast(CPU):
        model.lstm(feats)
    assert torch.bfloat16 in ops.of("lstm", "rnn"), ops.seen


def test_bf16_trains_differently_from_fp32(tiny_data):
    """The precision reaches the loop: the same seed in bf16 and fp32 gives other floats."""
    loaders = make_loaders(tiny_data, batch_size=16, progress=False)
    losses = [fit(build_model(TINY, seed=1), loaders.train, loaders.val,
                  TrainConfig(epochs=1, seed=1, precision=p), 10, device=CPU).history[0]["train_loss"]
              for p in ("fp32", "bf16")]
    assert losses[0] != losses[1]
    assert abs(losses[0] - losses[1]) < 0.05 * losses[0]       # and nearly the same


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_report_records_the_precision_the_trial_computed_in(tiny_data, precision):
    cfg = SearchConfig(space="tiny", data=tiny_data, max_epochs=1, grace_period=1, precision=precision)
    reports: list[dict[str, Any]] = []
    run_trial({"conv_blocks": 1, "conv_base": 4, "lstm_hidden": 8, "lr": 3e-3}, cfg,
              lambda metrics, state: reports.append(metrics), device=CPU)
    assert reports and reports[0]["precision"] == precision
    assert reports[0]["precision_reason"] == "asked for"


def test_channels_last_only_where_it_was_measured_faster():
    from vidtune.trainable.core.loop import use_channels_last

    fp32, bf16 = Precision("fp32", "asked for"), Precision("bf16", "asked for")
    assert use_channels_last(TrainConfig(), CPU, fp32)
    assert not use_channels_last(TrainConfig(), CPU, bf16)                   # slower in bf16
    assert not use_channels_last(TrainConfig(), torch.device("cuda", 0), fp32)   # unmeasured
    assert not use_channels_last(TrainConfig(channels_last=False), CPU, fp32)
