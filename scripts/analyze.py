"""Tables, plots and a self-contained HTML report of one or more search results folders.

Works on finished, interrupted and still-running searches. Writes trials.csv, history.csv,
summary.json, PNG plots and report.html to RESULTS_DIR/analysis (or --out). With several
folders: each to --out/<name> (or its own RESULTS_DIR/analysis) plus a comparison in --out
(or the first folder's analysis/comparison).
"""

from __future__ import annotations

import argparse

from vidtune.scripts._args import fail


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR",
                   help="a folder printed by `vidtune search` (results/<name>)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write (default RESULTS_DIR/analysis)")
    args = p.parse_args(argv)
    from vidtune.analysis import analyze_many, summary_lines
    from vidtune.trainable.core.lease import running_note

    try:
        analyses, comparison = analyze_many(args.results_dirs, args.out)
    except (ValueError, OSError) as exc:
        fail(p, exc)
    for a in analyses:
        print("\n".join(summary_lines(a)))
        note = running_note(a.path)   # a search still running: its latest snapshot was read
        if note:
            print(note)
        print(f"report: {a.files['report.html']}\n")
    if comparison:
        print(f"comparison: {comparison['comparison.html']}")


if __name__ == "__main__":
    main()
