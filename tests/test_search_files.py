"""Search files: `vidtune search --config FILE`, flags over the file, vidtune.json as a file,
and the user guide's example search file, run as it stands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from vidtune.data import DataConfig
from vidtune.scripts.search import make_config
from vidtune.trainable.core.search_config import SearchConfig

ROOT = Path(__file__).resolve().parents[1]


GUIDE = ROOT / "docs" / "guide" / "search-spaces.md"


def guide_block(heading: str, lang: str) -> str:
    """The first ```lang block under a heading of the user guide's page on search spaces."""
    text = GUIDE.read_text()
    section = text[text.index(heading):]
    match = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert match, f"no {lang} block under {heading}"
    return match.group(1)


def example(tmp_path: Path) -> Path:
    path = tmp_path / "search.toml"
    path.write_text(guide_block("## Search files", "toml"))
    return path


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidtune.scripts.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def fails(tmp_path: Path, capsys, text: str, *flags: str, name: str = "bad.toml") -> str:
    """`vidtune search --config FILE` (in this process) must exit 2 with one line, having
    started nothing. test_a_syntax_error_... checks the same in a real process."""
    from vidtune.scripts.cli import main

    path = tmp_path / name
    path.write_text(text)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--config", str(path), "--results-dir", str(tmp_path / "results"), *flags])
    assert exit_.value.code == 2 and not (tmp_path / "results").exists()
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line.removeprefix("vidtune search: error: ")


# -- the guide's example -----------------------------------------------------------------------------

def test_guide_search_file_sets_every_section(tmp_path):
    cfg = SearchConfig.from_file(example(tmp_path))
    assert (cfg.num_samples, cfg.max_epochs) == (16, 6)
    assert (cfg.grace_period, cfg.reduction_factor, cfg.promotion_cap) == (2, 3.0, False)
    assert (cfg.sampler, cfg.seed, cfg.cpus_per_trial, cfg.gpus_per_trial) == ("tpe", 0, 1.0, 0.0)
    assert cfg.name == "motion-lstm" and cfg.results_dir == str(tmp_path / "results")
    assert cfg.data == DataConfig(frames=8, height=32, width=32, num_clips=1000, noise=0.6)
    space = cfg.search_space()
    assert space.constants == {"weight_decay": 1e-4}
    assert space.default == {"conv_widths": "32-64-128", "lstm_hidden": 256, "lstm_layers": 1,
                             "lr": 1e-3}
    proc = cli("spaces", str(tmp_path / "search.toml"))
    assert proc.returncode == 0, proc.stderr
    assert "dropout      float 0..0.5  (when lstm_layers > 1)" in proc.stdout
    assert "conv_widths  one of 16-32, 16-32-64, 32-64-128" in proc.stdout


def test_guide_space_file_is_a_valid_space(tmp_path):
    path = tmp_path / "spaces.py"
    path.write_text(guide_block("## Your own space", "python"))
    space = SearchConfig(space=f"{path}:motion_space").search_space()
    assert space.default == {"conv_blocks": 3, "conv_base": 32, "lstm_hidden": 256,
                             "lstm_layers": 1, "lr": 1e-3}
    assert space.constants == {"weight_decay": 1e-4}


# -- flags over the file ------------------------------------------------------------------------------

def test_flags_given_override_the_file_and_only_those(tmp_path):
    path = str(example(tmp_path))
    cfg = make_config(["--config", path, "--num-samples", "12", "--data-seed", "3", "--asha-cap",
                       "--frames", "4"], "vidtune search")
    # --num-samples 12 is the flag's default, but it was given: it wins over the file's 16.
    assert cfg.num_samples == 12 and cfg.promotion_cap is True
    assert cfg.data.seed == 3 and cfg.data.frames == 4
    assert cfg.max_epochs == 6 and cfg.grace_period == 2 and cfg.data.height == 32  # the file's
    assert cfg.name == "motion-lstm"
    # A named space on the command line replaces the file's [space].
    assert make_config(["--config", path, "--space", "tiny"], None).space == "tiny"
    # The same through Python: keyword arguments override.
    api = SearchConfig.from_file(path, num_samples=12, promotion_cap=True,
                                 data={"seed": 3, "frames": 4})
    assert api == cfg


def test_vidtune_json_is_a_config_file(tmp_path):
    """What a search writes to vidtune.json reads back as the same config."""
    spaces = tmp_path / "spaces.py"
    spaces.write_text(guide_block("## Your own space", "python"))
    for space in ("wide", f"{spaces}:motion_space",
                  {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "lstm_hidden": [16, 32]}):
        cfg = SearchConfig(space=space, num_samples=5, max_epochs=3, grace_period=2,
                           promotion_cap=True, seed=7, name="old", results_dir=str(tmp_path),
                           data=DataConfig(frames=4, num_clips=50, seed=2)).resolved()
        saved = tmp_path / "vidtune.json"
        saved.write_text(json.dumps(cfg.to_json(), indent=2))
        again = SearchConfig.from_file(saved, name="new")
        # A new search records its own space hash (resolved() again): the rest is the same.
        assert again == replace(cfg, name="new", space_sha256="")
        assert again.resolved().space_sha256 == cfg.space_sha256


def test_relative_paths_are_relative_to_the_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    (folder / "videos" / "a").mkdir(parents=True)
    (folder / "spaces.py").write_text(guide_block("## Your own space", "python"))
    (folder / "s.toml").write_text('[search]\nspace = "spaces.py:motion_space"\n'
                                   '[storage]\nresults_dir = "out"\n[data]\nsource = "videos"\n')
    monkeypatch.chdir(tmp_path)
    cfg = SearchConfig.from_file("configs/s.toml")
    assert cfg.space == f"{folder / 'spaces.py'}:motion_space"
    assert cfg.results_dir == str(folder / "out") and cfg.data.source == str(folder / "videos")


# -- errors: the file and line, before Ray starts ---------------------------------------------------

def test_missing_config_file_and_a_toml_syntax_error_in_a_real_process(tmp_path):
    proc = cli("search", "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"config file '{tmp_path / 'nope.toml'}' does not exist; give a search file" in proc.stderr
    (tmp_path / "s.toml").write_text("[budget]\nnum_samples = 4\nmax_epochs = \n")
    proc = cli("search", "--config", str(tmp_path / "s.toml"), "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and not (tmp_path / "r").exists()
    assert proc.stderr.strip().splitlines() == [
        f"vidtune search: error: {tmp_path / 's.toml'}: Invalid value (at line 3, column 14); "
        "fix the TOML"]


@pytest.mark.parametrize("text,message", [
    ("[budget]\nnum_sample = 3\n", "bad.toml line 2: unknown key 'num_sample' in [budget]; did you "
                                   "mean num_samples?"),
    ("seed = 1\nnum_gpu = 1\n", "bad.toml line 2: unknown key 'num_gpu'; did you mean num_gpus?"),
    ("[asha]\ngrace_period = 1\ncpus_per_trial = 2\n",
     "bad.toml line 3: cpus_per_trial belongs in [resources], not [asha]"),
    ("[budget]\nnum_samples = \"8\"\n", "bad.toml line 2: num_samples is '8', but must be an integer"),
    ("[asha]\npromotion_cap = 1\n", "bad.toml line 2: promotion_cap is 1, but must be true or false"),
    ("[data]\nframes = 8\ndata_seed = 1\n",
     "bad.toml line 3: unknown key 'data_seed' in [data]; write [data] seed (the flag's field name)"),
    ("[data]\nframs = 8\n", "bad.toml line 2: unknown key 'frams' in [data]; did you mean frames?"),
    ("[budget]\nnum_samples = 4\nmax_epochs = 0\n", "bad.toml line 3: max_epochs is 0, but must be >= 1"),
    ("[data]\nwidth = 4\n", "bad.toml line 2: height x width is 32x4, but must be at least 8x8"),
    ("[search]\nwarm_start_use = \"some\"\n",
     "bad.toml line 2: warm_start_use is 'some'; known: all, full, explore"),
    ("[budget]\nnum_samples = 8\n[budget]\nmax_epochs = 2\n", "bad.toml: Cannot declare ('budget',) twice"),
    ("[space]\nlr = { low = 1e-4, high = 1e-2 }\nlstm_hidden = []\n",
     "bad.toml line 3: space parameter 'lstm_hidden' has no choices"),
    ("[space]\nlr = { low = 1e-4, high = 1e-2 }\nlstm_hiden = [16]\n",
     "bad.toml line 3: unknown hyperparameter 'lstm_hiden' in space declared; known: augment, batch_size"),
    ("[space]\nlr = { low = 1e-2, high = 1e-4, log = true }\n",
     "bad.toml line 2: space parameter 'lr': low 0.01 is above high 0.0001; swap them"),
    ("[space]\nlr = { low = 1e-4, high = 1e-2 }\n[space.first]\nlr = 1.0\n",
     "bad.toml line 4: the first trial of space declared sets lr = 1.0, outside its"),
    ("[search]\nspace = \"tiny\"\n[space]\nlr = [1e-3]\n", "bad.toml line 3: space is set twice"),
])
def test_toml_errors_name_the_file_and_line(tmp_path, capsys, text, message):
    assert message in fails(tmp_path, capsys, text)


def test_a_bad_flag_is_not_blamed_on_the_file(tmp_path, capsys):
    line = fails(tmp_path, capsys, "[budget]\nmax_epochs = 4\n", "--max-epochs", "0")
    assert line == "max_epochs is 0, but must be >= 1"


def test_json_errors_name_the_line(tmp_path, capsys):
    line = fails(tmp_path, capsys, '{\n  "num_samples": 4,\n  "max_epoch": 2\n}\n', name="old.json")
    assert line.endswith("old.json line 3: unknown key 'max_epoch'; did you mean max_epochs?")


# -- end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_guide_search_file_runs_then_reruns_from_its_vidtune_json(tmp_path, cache_dir):
    path = example(tmp_path)
    small = ["--num-samples", "3", "--max-epochs", "2", "--grace-period", "1", "--num-clips", "100",
             "--frames", "4", "--height", "16", "--width", "16", "--cache-dir", cache_dir,
             "--num-cpus", "2", "--max-concurrent", "1"]
    proc = cli("search", "--config", str(path), *small, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    experiment = tmp_path / "results" / "motion-lstm"    # [storage] of the file, beside it
    saved = json.loads((experiment / "vidtune.json").read_text())
    import tomllib

    assert saved["space"] == tomllib.loads(path.read_text())["space"]
    assert saved["num_samples"] == 3 and saved["data"]["noise"] == 0.6   # flag, file
    from vidtune.trainable.tune.experiment import load_experiment

    trials = load_experiment(experiment).trials.sort_values("order")
    assert len(trials) == 3
    first = trials.iloc[0]
    assert (first["conv_widths"], first["lstm_hidden"], first["lstm_layers"], first["lr"]) == \
        ("32-64-128", 256, 1, 1e-3)
    assert set(trials["conv_widths"]) <= {"16-32", "16-32-64", "32-64-128"}
    one_layer = trials[trials["lstm_layers"] == 1]
    assert "dropout" not in trials or one_layer["dropout"].isna().all()

    rerun = cli("search", "--config", str(experiment / "vidtune.json"), "--name", "again",
                "--num-samples", "1", timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    again = json.loads((tmp_path / "results" / "again" / "vidtune.json").read_text())
    assert {**saved, "name": "again", "num_samples": 1} == again
    history = pd.read_csv(next((tmp_path / "results" / "again").glob("trial_*/progress.csv")))
    assert len(history) >= 1


def test_time_budget_in_a_search_file(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('[budget]\ntime_budget_s = "15m"\n')
    assert SearchConfig.from_file(path).time_budget_s == 900.0
    # As with --time-budget alone on the command line: as many trials as fit ...
    assert make_config(["--config", str(path)], None).num_samples == 0
    # ... unless the file or a flag caps them.
    assert make_config(["--config", str(path), "--num-samples", "5"], None).num_samples == 5
    path.write_text('[budget]\ntime_budget_s = "15m"\nnum_samples = 7\n')
    assert make_config(["--config", str(path)], None).num_samples == 7
    line = fails(tmp_path, capsys, '[budget]\nnum_samples = 4\ntime_budget_s = "15 minutes"\n')
    assert line.endswith("bad.toml line 3: duration '15 minutes' is not understood; write e.g. "
                         "15m, 90s, 1h30m or 2h")
