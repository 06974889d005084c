"""The warm-start benchmark: its epoch count and its section on hand-made reports, and a smoke
run of the script whose rows must be what its kept searches reported.

No figure of the smoke run is judged: those of a busy CI machine mean nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.lib.warm_start import Pair, Run, make_plan, render, reports_in_order

ROOT = Path(__file__).resolve().parents[1]


def test_epochs_to_counts_every_trials_epochs_in_report_order(tmp_path):
    # Two trials at once: a's epochs at t = 1, 3, 5; b's at t = 2, 4.
    for name, times, accs in [("trial_a", [1, 3, 5], [0.2, 0.5, 0.7]), ("trial_b", [2, 4], [0.3, 0.6])]:
        (tmp_path / name).mkdir()
        pd.DataFrame({"reported_at": times, "val_acc": accs, "epoch": range(1, len(times) + 1)}) \
            .to_csv(tmp_path / name / "progress.csv", index=False)
    (tmp_path / "trial_c").mkdir()
    (tmp_path / "trial_c" / "progress.csv").write_text("")     # a trial that never reported
    reports = reports_in_order(tmp_path)
    assert reports == [0.2, 0.3, 0.5, 0.6, 0.7]
    run = Run(str(tmp_path), 0, reports)
    assert (run.best, run.epochs) == (0.7, 5)
    assert run.epochs_to(0.55) == 4 and run.epochs_to(0.6) == 4 and run.epochs_to(0.71) is None
    cold, warm = Run("c", 1, [0.1, 0.4, 0.6, 0.5]), Run("w", 1, [0.6, 0.2])
    pair = Pair(1, 0, cold, warm)
    assert (pair.cold_epochs, pair.warm_epochs) == (3, 1)


def test_the_section_renders_hand_made_pairs():
    plan = make_plan(smoke=True)
    # Seed 0: the cold search reaches its best (0.6) at its 3rd epoch, the warm one at its 1st.
    # Seed 1: the warm search never reaches the cold best (0.4); its cold search is reused.
    reached = Pair(0, 1, Run("c0", 0, [0.2, 0.5, 0.6, 0.55], 12.0), Run("w0", 0, [0.6, 0.3], 8.0))
    missed = Pair(1, 0, Run("c1", 1, [0.3, 0.4], float("nan")), Run("w1", 1, [0.1, 0.2, 0.35], 9.0))
    body = render(plan, [reached, missed], "a machine", 90.0, jobs=2)
    assert body.startswith("### Warm start: epochs to reach the cold search's best\n")
    assert "Machine: a machine. Whole run: 1.5 min." in body
    assert "(2 searches at once, so the wall times share the cores)" in body
    assert "The cold searches are an earlier run's (`--cold-from`)" in body
    assert "| 0 | 1 | all | 0.6000 | 3 | 1 | 0.6000 | 4 | 2 | 12 s | 8 s |" in body
    assert "| 1 | 0 | all | 0.4000 | 2 | not reached | 0.3500 | 2 | 3 | reused | 9 s |" in body
    assert ("- `all`: warm reached the cold best in fewer epochs for 1 of 2 seeds (reached it at "
            "all: 1); mean warm best 0.4750 against the cold 0.5000; epochs to the cold best, "
            "warm / cold, where reached: 0.33.") in body
    # One search at a time, every cold search run here: neither note.
    alone = render(plan, [reached], "a machine", 60.0)
    assert "searches at once" not in alone and "--cold-from" not in alone


@pytest.mark.slow
def test_bench_warm_start_smoke(tmp_path, cache_dir):
    out, keep = tmp_path / "bench.md", tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_warm_start", "--smoke",
                           "--jobs", "2", "--out", str(out), "--keep", str(keep)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()   # written as its section of the markdown file
    assert text.startswith("<!-- bench_warm_start:start -->\n### Warm start: epochs to reach the cold search's best")
    assert text.rstrip().endswith("<!-- bench_warm_start:end -->")
    assert "(2 searches at once, so the wall times share the cores)" in text
    rows = [line for line in text.splitlines() if re.match(r"^\| \d ", line)]
    assert len(rows) == 2, text
    for row, (seed, source) in zip(rows, [(0, 1), (1, 0)], strict=True):
        # Each warm search was warm-started from the other seed's finished cold search ...
        warm = keep / f"warm-s{seed}-from-s{source}"
        saved = json.loads((warm / "vidtune.json").read_text())
        assert saved["seed"] == seed and saved["warm_start"] == [str(keep / f"cold-s{source}")]
        # ... and the row's figures are those of the two searches' own progress.csv files.
        pair = Pair(seed, source, Run("", seed, reports_in_order(keep / f"cold-s{seed}")),
                    Run("", seed, reports_in_order(warm)))
        expected = render(make_plan(smoke=True), [pair], "", 0.0).splitlines()
        (line,) = [r for r in expected if r.startswith(f"| {seed} | {source} |")]
        assert row.split(" | ")[:9] == line.split(" | ")[:9], (row, line)
    # Again with the cold searches of that run: they are read, not rerun; the warm ones run.
    again = tmp_path / "again.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_warm_start", "--smoke",
                           "--cold-from", str(keep), "--out", str(again)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows_again = [line for line in again.read_text().splitlines() if re.match(r"^\| \d ", line)]
    for row, row_again in zip(rows, rows_again, strict=True):
        cells, cells_again = (([c.strip() for c in r.strip("|").split("|")]) for r in (row, row_again))
        # The same cold search, and the warm search one at a time repeats the one run beside
        # another (--jobs 2) to the epoch: only the wall times differ.
        assert cells_again[:9] == cells[:9] and cells_again[9] == "reused"


def test_cold_from_a_folder_without_the_cold_searches_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_warm_start", "--smoke",
                           "--cold-from", str(tmp_path), "--out", str(tmp_path / "b.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and not (tmp_path / "b.md").exists()
    assert f"--cold-from is '{tmp_path}', which lacks the cold search of seed(s) [0, 1]" in proc.stderr
