"""One live driver per search, with real processes: a second driver on a running search's
folder is refused and the first ends with its exact trial count; analyze reads the running
search; a lease left by another host is refused while its heartbeat is fresh and taken over
once it is stale. (A SIGKILLed driver's lease: test_resume.py's kill-and-resume test.)"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from _helpers import progress, vidtune

from vidtune.trainable.core.lease import LEASE_FILE, Holder
from vidtune.trainable.core.search_config import SearchConfig

pytestmark = pytest.mark.slow

NUM_SAMPLES = 4


def wait_for(check, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not check():
        assert proc.poll() is None, "the search ended too early"
        assert time.time() < deadline, "condition not reached"
        time.sleep(0.1)


def test_second_driver_is_refused_and_analyze_reads_the_running_search(tmp_path, cache_dir):
    experiment = tmp_path / "R" / "twice"
    first = subprocess.Popen(
        [sys.executable, "-m", "vidtune.scripts.cli", "search", "--space", "tiny",
         "--num-samples", str(NUM_SAMPLES), "--max-epochs", "2", "--num-cpus", "2",
         "--num-clips", "100", "--frames", "4", "--height", "16", "--width", "16",
         "--cache-dir", cache_dir, "--results-dir", str(tmp_path / "R"), "--name", "twice"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        wait_for(lambda: len(progress(experiment)) >= 1
                 and any(experiment.glob("experiment_state-*.json")), first)
        # Freeze the first driver (its trials run on): the second driver, the readers and the
        # first's own snapshot all meet a search that is certainly still running.
        first.send_signal(signal.SIGSTOP)
        try:
            commands = {"resume": ["resume", str(experiment)],
                        "search": ["search", "--space", "tiny", "--results-dir",
                                   str(tmp_path / "R"), "--name", "twice"],
                        "analyze": ["analyze", str(experiment)]}
            procs = {k: subprocess.Popen([sys.executable, "-m", "vidtune.scripts.cli", *args],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for k, args in commands.items()}   # side by side: a short freeze
            done = {k: subprocess.CompletedProcess(p.args, 0, *p.communicate(timeout=240))
                    for k, p in procs.items()}
            for k, p in procs.items():
                done[k].returncode = p.returncode
        finally:
            first.send_signal(signal.SIGCONT)
        resumed, again, analyzed = done["resume"], done["search"], done["analyze"]
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    for refused in (resumed, again):
        assert refused.returncode == 2, refused.stderr[-2000:]
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert f"{experiment} is in use by another driver: `vidtune search`, pid {first.pid} on " \
               f"host {socket.gethostname()}, since 20" in lines[0]
        assert f"kill {first.pid}" in lines[0] and "Traceback" not in refused.stderr
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    assert f"note: the search is still running (`vidtune search`, pid {first.pid}" in analyzed.stdout
    assert "NOT finished" in analyzed.stdout
    # The first search ran undisturbed: its exact trial count, a true summary, every trial
    # once in the study, and its lease gone with it.
    assert first.returncode == 0, out[-3000:]
    assert f"\n{NUM_SAMPLES} trials, 0 errored\n" in out
    assert "interrupted" not in out
    assert len(list(experiment.glob("trial_*"))) == NUM_SAMPLES
    study = optuna.load_study(study_name="twice", storage=f"sqlite:///{experiment / 'optuna.db'}")
    assert len(study.trials) == NUM_SAMPLES
    assert not (experiment / LEASE_FILE).exists()


def folder_with_lease(tmp_path: Path, beat_age_s: float) -> Path:
    """A search folder (vidtune.json, no trial yet) whose lease a driver on another host
    left: what a shared path holds when that host was lost `beat_age_s` seconds ago."""
    cfg = SearchConfig(space="tiny", results_dir=str(tmp_path), name="shared").resolved()
    experiment = Path(cfg.experiment_path)
    experiment.mkdir(parents=True)
    (experiment / "vidtune.json").write_text(json.dumps(cfg.to_json()))
    now = time.time()
    (experiment / LEASE_FILE).write_text(
        Holder("gpu-node-7", 31337, now - 3600, now - beat_age_s, "theirs", "vidtune search",
               "boot-of-gpu-node-7", "pid:[4026531836]").to_text())
    return experiment


def test_a_fresh_heartbeat_of_another_host_is_refused_and_a_stale_one_taken_over(tmp_path):
    fresh = folder_with_lease(tmp_path / "fresh", beat_age_s=5)
    refused = vidtune("resume", str(fresh), timeout=120)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "pid 31337 on host gpu-node-7" in line
    found = re.search(r"last heartbeat (\d+) s ago; .*if that host is down, its lease frees "
                      r"itself (\d+) s from now: run this again then", line)
    assert found, line
    assert 5 <= int(found[1]) < 60 and int(found[1]) + int(found[2]) in (59, 60, 61)
    assert json.loads((fresh / LEASE_FILE).read_text())["token"] == "theirs"   # left as it was

    stale = folder_with_lease(tmp_path / "stale", beat_age_s=600)
    taken = vidtune("resume", str(stale), timeout=120)
    # Taken over before anything else; this folder then has no trial to resume (a clean error).
    took = re.search(r"took over the lease of (\S+) from `vidtune search`, pid 31337 on host "
                     r"gpu-node-7, since [-0-9: ]+ UTC: its heartbeat stopped, last heartbeat "
                     r"(\d+) s ago", taken.stderr)
    assert took and took[1] == str(stale) and int(took[2]) >= 600, taken.stderr
    assert taken.returncode == 2 and "has no Ray Tune experiment state" in taken.stderr
    assert not (stale / LEASE_FILE).exists()   # given back when the driver stopped
