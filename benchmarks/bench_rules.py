"""Benchmark: ASHA's rung rules judged on saved full learning curves, load-independent.

Reads full curves (benchmarks/lib/full_curves.py: random configs of the default space trained
to max epochs, the seed configuration first) and measures, per rung score (last, best,
mean2, fit) and per kind of ASHA (stop, promote):

- the rank correlation (Spearman) of the score at epochs 1-3 with the config's best val acc;
- where the pool's best config ranks by that score after each epoch;
- an asynchronous replay on 2 workers (vidtune's grace 1, rf 3, 6 epochs): median best val
  acc by B/4, B/2 and B over 200 random orders, B = 110 epochs of the two workers
  (about 8 minutes on the 2-core machine at ~8.7 s per epoch), the seed configuration first
  as in vidtune, and once without it.

    python -m benchmarks.bench_rules                        # from benchmarks/lib/data/curves_default.jsonl, seconds
    python -m benchmarks.bench_rules --generate 30          # train the curves first (~20 min on 2 idle cores)
    python -m benchmarks.bench_rules --smoke --out /tmp/b.md   # tiny curves, trained in the run

Writes the section `bench_rung_rules` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.lib.common import SMOKE_NOTE, machine_line, write_section
from benchmarks.lib.full_curves import load_curves
from benchmarks.lib.full_curves import main as generate_main
from benchmarks.lib.rung_rules import (
    Pool,
    prior_distance,
    rank_of_best,
    replay_table,
    rule_correlations,
    spearman,
)
from vidtune.trainable.core.rung_scores import RUNG_SCORES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CURVES = ROOT / "benchmarks" / "lib" / "data" / "curves_default.jsonl"
KEY = "bench_rung_rules"
CAPACITY_EPOCHS = 110     # B: epochs the two workers can train in the budget
OVERHEAD_EPOCHS = 0.2     # a trial's start, or a resume from its checkpoint, in epochs


def render(rows: list[dict], max_epochs: int, smoke: bool, n_orders: int) -> str:
    curves = [r["curve"] for r in rows]
    n = len(curves)
    finals = [max(c) for c in curves]
    lines = [
        "## Rung rules on full learning curves (`benchmarks/bench_rules.py`)",
        "",
        f"- Run: {machine_line()}. The figures depend only on the saved curves, not on the load.",
        f"- Curves: {n} configs of the `default` space trained to {max_epochs} epochs with no "
        "early stopping on `make search`'s data (seed 0, one torch thread each; config 0 is the "
        "seed configuration, the others drawn by Optuna's RandomSampler), saved in "
        "`benchmarks/lib/data/curves_default.jsonl` by `benchmarks/lib/full_curves.py`. "
        f"Best val acc {max(finals):.3f}, median {statistics.median(finals):.3f}.",
        "- Scores: **last** = val acc at the rung's epoch (Ray's ASHA); **best** = best so far; "
        "**mean2** = mean of the last two epochs; **fit** = a - b/t fitted to the epochs so "
        f"far, read at epoch {max_epochs}.",
    ]
    if smoke:
        lines += ["", SMOKE_NOTE]
    epochs = [e for e in (1, 2, 3) if e < max_epochs]
    rho = rule_correlations(curves, max_epochs, epochs)
    lines += ["", "Rank correlation (Spearman) of the score after epoch m with the config's best "
              "val acc, and the rank of the pool's best config by that score:", "",
              "| score | " + " | ".join(f"rho, epoch {m}" for m in epochs) + " | "
              + " | ".join(f"best config's rank, epoch {m}" for m in epochs) + " |",
              "|---|" + "---|" * (2 * len(epochs))]
    for name in RUNG_SCORES:
        lines.append(f"| {name} | " + " | ".join(f"{rho[name][m]:.2f}" for m in epochs) + " | "
                     + " | ".join(f"{rank_of_best(curves, max_epochs, m, name)} of {n}"
                                  for m in epochs) + " |")
    epoch_s = [statistics.median(r["epoch_s"]) or 1.0 for r in rows]
    unit = statistics.median(epoch_s)
    pool = Pool(curves, epoch_s)
    budget = CAPACITY_EPOCHS / 2 * unit
    variants = [(kind, name) for kind in ("stop", "promote") for name in RUNG_SCORES]
    for first in (True, False):
        table = replay_table(pool, variants, 2, budget, 1, 3, max_epochs, n_orders=n_orders,
                             start_s=OVERHEAD_EPOCHS * unit, resume_s=OVERHEAD_EPOCHS * unit,
                             first=first)
        target = next(iter(table.values()))["target"]
        lines += ["", f"Replay, 2 workers, grace 1, rf 3, B = {CAPACITY_EPOCHS} epochs of the "
                  f"two workers, {n_orders} random orders, "
                  + ("the seed configuration first (as vidtune):" if first else
                     "no seed configuration (every config drawn at random):"), "",
                  f"| ASHA | score | best by B/4 | by B/2 | by B | mean by B | reached {target:.3f} "
                  "| median time to it (epochs of a worker) |", "|---|---|---|---|---|---|---|---|"]
        for (kind, name), v in table.items():
            ttt = "never" if v["ttt"] == float("inf") else f"{v['ttt'] / unit:.1f}"
            lines.append(f"| {kind} | {name} | {v['B/4']:.3f} | {v['B/2']:.3f} | {v['B']:.3f} | "
                         f"{v['mean B']:.4f} | {v['reached']:.0%} | {ttt} |")
    lines += ["", f"The seed configuration (config 0): val acc {curves[0][0]:.3f} after epoch 1, "
              f"best {finals[0]:.3f}, rank {1 + sum(f > finals[0] for f in finals)} of {n} by best "
              f"val acc; its curve {', '.join(f'{x:.3f}' for x in curves[0])}. The best after "
              "epoch 1 of any config: "
              f"{max(c[0] for c in curves):.3f}; after epoch 2: {max(c[1] for c in curves):.3f}."]
    # The user's prior (PriorBand's idea): do configs near the seed configuration do better?
    dist = [prior_distance(r["params"], rows[0]["params"]) for r in rows[1:]]
    near = sorted(range(len(dist)), key=lambda i: dist[i])[: max(1, len(dist) // 3)]
    far = [i for i in range(len(dist)) if i not in near]
    lines += [f"The prior: over the {len(dist)} random configs, the rank correlation of the "
              f"distance to the seed configuration with the best val acc is "
              f"{spearman(dist, finals[1:]):.2f} (negative: nearer is better); the nearest third's "
              f"median best is {statistics.median(finals[1:][i] for i in near):.3f}, the rest's "
              f"{statistics.median(finals[1:][i] for i in far) if far else float('nan'):.3f}. "
              "(Distance: |log10 ratio| of lr, relative difference of the integers, 1 per "
              "different category.)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--curves", default=str(CURVES), help="the saved curves (JSON lines)")
    p.add_argument("--generate", type=int, default=0, metavar="N",
                   help="first train N configs into --curves (kept ones are skipped)")
    p.add_argument("--smoke", action="store_true", help="tiny curves trained in the run")
    p.add_argument("--orders", type=int, default=200, help="random orders of the replay")
    p.add_argument("--out", default=str(DOCS / "benchmarks.md"), help="markdown file to update")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vidtune-rules-") as tmp:
        path = Path(tmp) / "curves.jsonl" if args.smoke else Path(args.curves)
        if args.smoke:
            generate_main([str(path), "--smoke", "--n", "4", "--max-epochs", "3"])
        elif args.generate:
            generate_main([str(path), "--n", str(args.generate)])
        if not path.exists():
            p.error(f"curves {str(path)!r} do not exist; train them with --generate 30")
        rows = load_curves(path)
    max_epochs = min(len(r["curve"]) for r in rows)
    body = render(rows, max_epochs, args.smoke, 20 if args.smoke else args.orders)
    write_section(args.out, KEY, body)
    print(body, file=sys.stderr)
    return body


if __name__ == "__main__":
    main()
