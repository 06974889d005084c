"""User search spaces, checked before Ray starts: define-by-run files and declared spaces.

Real files written here, loaded as `vidtune search` loads them; the errors must name the
parameter, the file and line, and the fix. No Ray in this file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from vidtune.search_spaces import SpaceError, get_space, space_distributions, to_hparams
from vidtune.trainable.core.search_config import SearchConfig
from vidtune.trainable.core.space_check import first_trial, seed_config
from vidtune.trainable.core.trial import trial_configs

SPACES = '''\
"""Two spaces of a user."""
import optuna


def motion_space(trial: optuna.Trial) -> None:
    """Small CNNs, one or two LSTM layers, dropout only with two."""
    trial.suggest_int("conv_blocks", 1, 3)
    trial.suggest_categorical("conv_base", [8, 32])
    if trial.suggest_int("lstm_layers", 1, 2) > 1:
        trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)


motion_space.constants = {"spatial_pool": 2}


def with_first(trial):
    trial.suggest_categorical("lstm_hidden", [16, 32])
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)


with_first.first = {"lstm_hidden": 16, "lr": 5e-3}


def _helper(trial):
    pass
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.fixture
def search_fails(tmp_path, capsys):
    """`vidtune search ARGS` must exit 2 with one line on stderr, having started nothing.

    In this process, for speed; test_syntax_error_shows_the_users_line runs a real one.
    """
    from vidtune.scripts.cli import main

    def run(*args: str) -> str:
        results = tmp_path / "results"
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(["search", *args, "--results-dir", str(results)])
        assert exit_.value.code == 2
        assert not results.exists(), "something started"
        (line,) = capsys.readouterr().err.strip().splitlines()
        return line

    return run


# -- define-by-run spaces in a user's file ------------------------------------------------------

def test_a_file_space_samples_its_distributions_and_constants(tmp_path):
    path = write(tmp_path, "spaces.py", SPACES)
    space = get_space(f"{path}:motion_space")
    assert space.description == "Small CNNs, one or two LSTM layers, dropout only with two."
    assert space.constants == {"spatial_pool": 2}
    dists = space_distributions(f"{path}:motion_space")
    assert list(dists) == ["conv_blocks", "conv_base", "lstm_layers", "dropout", "lr"]
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    # Ray's searcher is pickled for resume: the space's define pickles by reference.
    import pickle

    again = pickle.loads(pickle.dumps(space.define))
    study = optuna.create_study()
    trial = study.ask()
    again(trial)
    assert {"conv_blocks", "conv_base", "lstm_layers", "lr"} <= set(trial.params)


def test_first_trial_is_the_files_own_or_the_seed_where_the_space_covers_it(tmp_path):
    path = write(tmp_path, "spaces.py", SPACES)
    assert first_trial(get_space(f"{path}:with_first")) == {"lstm_hidden": 16, "lr": 5e-3}
    # No first given: the seed configuration for the parameters the space samples and holds.
    # Seed conv_base 32 is a choice, conv_blocks 3 in 1..3, lr 1e-3 in range; the seed has one
    # LSTM layer and no dropout.
    seed = seed_config()
    assert first_trial(get_space(f"{path}:motion_space")) == {
        "conv_blocks": seed["conv_blocks"], "conv_base": seed["conv_base"],
        "lstm_layers": 1, "dropout": 0.0, "lr": seed["lr"]}
    # The built-in spaces keep their own first trial, and seed_config is the seed of README.
    assert first_trial(get_space("default")) == {"conv_blocks": 3, "conv_base": 32,
                                                 "lstm_hidden": 256, "lr": 1e-3}
    model, train = trial_configs(seed, SearchConfig(space="tiny"), 10)
    assert model.conv_widths == (32, 64, 128) and model.lstm_hidden == 256 and train.lr == 1e-3


def test_vidtune_spaces_lists_user_spaces_with_their_distributions(tmp_path):
    path = write(tmp_path, "spaces.py", SPACES)
    proc = cli("spaces", str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"{path}:motion_space: Small CNNs" in out and f"{path}:with_first" in out
    assert "_helper" not in out
    assert "conv_blocks  int 1..3" in out and "conv_base    one of 8, 32" in out
    assert "dropout      float 0..0.5  (conditional)" in out
    assert "lr           float 0.0001..0.01, log" in out
    assert 'fixed: {"spatial_pool": 2}' in out
    assert 'first trial: {"lr": 0.005, "lstm_hidden": 16}' in out
    # Built-in spaces show their distributions too.
    proc = cli("spaces")
    assert "tiny: Very small models" in proc.stdout and "lstm_hidden  one of 16, 32" in proc.stdout


def test_a_function_given_in_python_is_recorded_by_its_file(tmp_path, monkeypatch):
    path = write(tmp_path, "my_spaces.py", SPACES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_spaces", raising=False)
    import my_spaces  # the user's own import

    cfg = SearchConfig(space=my_spaces.motion_space)
    assert cfg.space == f"{path}:motion_space"
    assert cfg.search_space().constants == {"spatial_pool": 2}
    from vidtune.search_spaces import tiny_space

    assert SearchConfig(space=tiny_space).space == "tiny"


def two_args(trial, epochs):
    pass


def test_functions_that_cannot_be_loaded_again_or_called_are_refused():
    def nested(trial):
        pass

    for space in (lambda trial: None, nested):
        with pytest.raises(ValueError, match="is a lambda, method or nested function; define it "
                                             "at the top of a .py file"):
            SearchConfig(space=space)
    with pytest.raises(ValueError, match=r"test_user_spaces.py line \d+: two_args\(trial, epochs\) "
                                         r"is not a search space: it must take one argument"):
        SearchConfig(space=two_args)


def test_resolved_records_the_files_hash_and_a_recorded_search_refuses_a_change(tmp_path):
    path = write(tmp_path, "spaces.py", SPACES)
    cfg = SearchConfig(space=f"{path}:motion_space").resolved()
    import hashlib

    assert cfg.space_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    recorded = SearchConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert recorded.search_space().constants == {"spatial_pool": 2}
    path.write_text(SPACES.replace("1e-2, log=True", "3e-2, log=True"))
    with pytest.raises(ValueError, match=r"space file .*spaces.py has changed since the search "
                                         r"started \(sha256 \w{12} in vidtune.json, \w{12} now\)"):
        recorded.search_space()
    # Ray's searcher holds the define function by reference (spec and hash): it refuses too.
    define = get_space(cfg.space).define
    assert replace(cfg, num_samples=3).space_sha256 == cfg.space_sha256   # loads nothing
    with pytest.raises(ValueError, match="has changed since the search started"):
        type(define)(cfg.space, cfg.space_sha256)(optuna.create_study().ask())
    path.rename(tmp_path / "elsewhere.py")
    with pytest.raises(ValueError, match=r"spaces.py' of this search is gone: moved or deleted"):
        recorded.search_space()


def test_a_relative_space_file_is_made_absolute_and_hashed(tmp_path, monkeypatch):
    write(tmp_path, "spaces.py", SPACES)
    monkeypatch.chdir(tmp_path)
    cfg = SearchConfig(space="spaces.py:motion_space").resolved()
    assert cfg.space == f"{tmp_path / 'spaces.py'}:motion_space" and len(cfg.space_sha256) == 64


# -- the error cases, through `vidtune search` (before Ray starts) ----------------------------------

def test_missing_space_file(tmp_path, search_fails):
    line = search_fails("--space", str(tmp_path / "nope.py:my_space"))
    assert f"space file '{tmp_path / 'nope.py'}' does not exist" in line
    assert "e.g. --space path/to/spaces.py:my_space" in line


def test_syntax_error_shows_the_users_line(tmp_path, search_fails):
    path = write(tmp_path, "spaces.py", """\
        import optuna

        def my_space(trial):
            trial.suggest_float("lr" 1e-4, 1e-2)
        """)
    line = search_fails("--space", f"{path}:my_space")
    assert line.startswith(f"vidtune search: error: {path} line 4: syntax error:")
    assert '`trial.suggest_float("lr" 1e-4, 1e-2)`' in line and "fix the space file" in line
    # The same in a real process: one line, no traceback, nothing started.
    proc = cli("search", "--space", f"{path}:my_space", "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "r").exists()


def test_error_at_import_shows_the_users_line(tmp_path, search_fails):
    path = write(tmp_path, "spaces.py", """\
        import optuna
        WIDTHS = [16, 32]
        LARGEST = WIDTH[-1]

        def my_space(trial):
            pass
        """)
    line = search_fails("--space", f"{path}:my_space")
    assert f"{path} line 3: NameError: name 'WIDTH' is not defined" in line
    assert "`LARGEST = WIDTH[-1]`" in line


def test_error_while_sampling_shows_the_users_line(tmp_path, search_fails):
    path = write(tmp_path, "spaces.py", """\
        def my_space(trial):
            blocks = trial.suggest_int("conv_blocks", 1, 2)
            trial.suggest_categorical("conv_base", [8, 16])
            trial.suggest_float("lr", 1e-4, 1e-2 / undefined_scale, log=True)
        """)
    line = search_fails("--space", f"{path}:my_space")
    assert f"{path} line 4: NameError: name 'undefined_scale' is not defined" in line


@pytest.mark.parametrize("signature", ["my_space(trial, epochs)", "my_space()"])
def test_function_with_the_wrong_signature(tmp_path, signature, search_fails):
    path = write(tmp_path, "spaces.py", f"""\
        import optuna


        def {signature}:
            pass
        """)
    line = search_fails("--space", f"{path}:my_space")
    assert f"{path} line 4: {signature} is not a search space: it must take one argument, the " \
           "Optuna trial: def my_space(trial): ..." in line


def test_missing_function_lists_the_files_functions(tmp_path, search_fails):
    path = write(tmp_path, "spaces.py", SPACES)
    line = search_fails("--space", f"{path}:motion")
    assert f"{path} has no function 'motion'; its functions: motion_space, with_first" in line


@pytest.mark.parametrize("name", ["default", "wide", "video", "tiny"])
def test_every_built_in_space_passes_the_space_check(name):
    """'video' samples augment, a setting of the trial's data, which split_params refuses: the
    check, like trial_configs, leaves it out of the model and training configs."""
    from vidtune.trainable.core.space_check import check_space

    check_space(get_space(name))


def test_unknown_hyperparameter_names_file_line_and_known_names(tmp_path, search_fails):
    path = write(tmp_path, "spaces.py", """\
        def my_space(trial):
            trial.suggest_float("lr", 1e-4, 1e-2, log=True)
            trial.suggest_int("lstm_hiden", 16, 64)
        """)
    line = search_fails("--space", f"{path}:my_space")
    assert f"{path} line 3: unknown hyperparameter 'lstm_hiden' in space {path}:my_space; known: " \
           "augment, batch_size, channels_last, conv_base, conv_blocks, conv_widths, dropout, encoder, grad_clip, " \
           "lr, lstm_hidden, lstm_layers, precision, spatial_pool, weight_decay" in line


@pytest.mark.parametrize("call,message", [
    ('trial.suggest_float("lr", 1e-2, 1e-4, log=True)',
     "parameter 'lr': `low <= high` must hold, but got (low=0.01, high=0.0001); fix the "
     "suggest_float call"),
    ('trial.suggest_categorical("lstm_hidden", [])',
     "parameter 'lstm_hidden': The `choices` must contain one or more elements; fix the "
     "suggest_categorical call"),
    ('trial.suggest_float("dropout", 0.0, 1.0)',
     "parameter 'dropout' of space {spec}: its value 1.0 fails: dropout is 1.0, but must lie in [0, 1)"),
    ('trial.suggest_categorical("conv_widths", [(16, 32)])',
     "parameter 'conv_widths': choice (16, 32) is not a number, string or bool; give conv widths "
     "as strings like '32-64-128'"),
])
def test_bad_range_or_empty_choice_names_the_parameter_and_line(tmp_path, call, message, search_fails):
    path = write(tmp_path, "spaces.py", f"""\
        def my_space(trial):
            trial.suggest_int("lstm_layers", 1, 2)
            {call}
        """)
    line = search_fails("--space", f"{path}:my_space")
    assert f"{path} line 3: " + message.format(spec=f"{path}:my_space") in line


def test_a_module_space_that_cannot_be_imported(tmp_path, search_fails):
    line = search_fails("--space", "no_such_module_xyz:my_space")
    assert "cannot import module 'no_such_module_xyz' of space 'no_such_module_xyz:my_space'" in line
    assert "put it on PYTHONPATH" in line


def test_a_module_space_on_pythonpath(tmp_path, monkeypatch):
    write(tmp_path, "team_spaces.py", SPACES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "team_spaces", raising=False)
    cfg = SearchConfig(space="team_spaces:motion_space").resolved()
    assert cfg.space == "team_spaces:motion_space"
    assert cfg.space_sha256 == __import__("hashlib").sha256((tmp_path / "team_spaces.py").read_bytes()).hexdigest()
    assert cfg.search_space().constants == {"spatial_pool": 2}


# -- declared spaces ------------------------------------------------------------------------------

DECLARED = {
    "conv_widths": [[8, 16], [16, 32, 64]],
    "lstm_hidden": [16, 32],
    "lstm_layers": {"low": 1, "high": 2},
    "dropout": {"low": 0.0, "high": 0.5, "when": "lstm_layers > 1"},
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "spatial_pool": 2,
}


def test_declared_space_samples_ranges_choices_and_conditions():
    space = get_space(DECLARED)
    dists = space_distributions(DECLARED)
    assert dists["lstm_layers"] == optuna.distributions.IntDistribution(1, 2)
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert dists["conv_widths"].choices == ("8-16", "16-32-64")
    assert space.constants == {"spatial_pool": 2}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_dropout = {1: 0, 2: 0}
    for _ in range(40):
        trial = study.ask()
        space.define(trial)
        seen_dropout[trial.params["lstm_layers"]] += "dropout" in trial.params
        hp = to_hparams(trial.params)
        assert hp["conv_widths"] in ((8, 16), (16, 32, 64))
        study.tell(trial, 0.0)
    assert seen_dropout[1] == 0 and seen_dropout[2] > 0, seen_dropout


@pytest.mark.parametrize("declared,message", [
    ({"lr": {"low": 1e-2, "high": 1e-4}}, "space parameter 'lr': low 0.01 is above high 0.0001; swap them"),
    ({"lr": {"low": 0.0, "high": 1e-2, "log": True}}, "a log scale needs low > 0, not 0.0"),
    ({"lstm_hidden": []}, "space parameter 'lstm_hidden' has no choices ([]); give at least one"),
    ({"lstm_hiden": [16]}, "unknown hyperparameter 'lstm_hiden' in space declared; known: augment, batch_size"),
    ({"lr": {"low": 1e-4}}, "space parameter 'lr' needs low and high"),
    ({"lr": {"low": 1e-4, "high": 1e-2, "lgo": True}}, "space parameter 'lr': unknown key 'lgo'"),
    ({"dropout": {"low": 0.0, "high": 0.5, "when": "lstm_layers > 1"}},
     "when refers to 'lstm_layers', which is not a parameter sampled above it"),
    ({"lstm_hidden": [[16, 32]]}, "choice [16, 32] is a list; only conv_widths takes lists"),
    ({"lstm_hidden": [0, 16]}, "parameter 'lstm_hidden' of space declared: its value 0 fails: "
                               "lstm_hidden is 0, but must be >= 1"),
    ({"spatial_pool": 2}, "the declared space samples nothing"),
    ({"lr": {"low": 1e-4, "high": 1e-2}, "first": {"lr": 0.5}},
     "the first trial of space declared sets lr = 0.5, outside its FloatDistribution"),
])
def test_declared_space_errors(declared, message):
    with pytest.raises(ValueError) as info:
        SearchConfig(space=declared)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_registered_name_that_is_unknown_lists_the_known_and_the_file_form():
    with pytest.raises(SpaceError, match=r"unknown search space 'nope'; known spaces: default, "
                                         r"tiny, video, wide, or a define-by-run function as "
                                         r"path/to/file.py:function"):
        SearchConfig(space="nope")


@pytest.mark.parametrize("body,message", [
    # A constant cannot stand in for half of the pair: trials apply to_hparams to what was
    # sampled, before the constants (core.trial._hparams), so every trial would fail.
    ("    trial.suggest_int('conv_blocks', 1, 2)\n\n\nmy_space.constants = {'conv_base': 8}\n",
     "conv_blocks (1) and conv_base (None) must be sampled together"),
    # What the function returns overrides what it sampled (OptunaSearch's merge), and counts.
    ("    if trial.suggest_int('lstm_layers', 1, 2) > 1:\n        return {'lstm_hidden': 0}\n",
     "which fails: lstm_hidden is 0, but must be >= 1"),
])
def test_configs_are_checked_as_the_trials_build_them(tmp_path, body, message):
    path = write(tmp_path, "spaces.py", "def my_space(trial):\n" + body)
    with pytest.raises(ValueError, match=re.escape(message)):
        SearchConfig(space=f"{path}:my_space")
