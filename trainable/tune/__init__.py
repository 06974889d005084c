"""The Ray Tune layer, the only place that imports Ray.

The search:
- driver.py         run_search / resume_search: Optuna TPE proposes, Tune runs, ASHA stops
- adapter.py        the thin function trainable: checkpoint restore, tune.report
- cluster.py        joining a Ray cluster (--address); a failed connection is one line
- cluster_cache.py  a cluster's clip cache, built by Ray tasks spread over its nodes
Proposing, stopping, sharing the machine:
- tpe.py            TPE that learns from a bounded history, so a proposal stays cheap
- warm_start.py     earlier searches' finished trials as Optuna trials for a warm start
- asha.py           ResumableASHA and RungKeeper (rungs survive a resume, ray#30838)
- budget.py         --time-budget: trials proposed while they can still pay off, then a stop
- threads.py        the cores no trial can use go to the running trials
- stock.py          stock Ray Tune as its documentation teaches it (the benchmarks' peer)
What a search writes:
- loggers.py        progress.csv and params.json, straight into storage
- retention.py      checkpoints kept only where they can still be used
- snapshots.py      one set of experiment snapshot files, however often a search resumes
- slim.py           a finished trial's bookkeeping in the driver, cut to what is still read
- stats.py          driver.jsonl: what the driver's own bookkeeping costs
- optuna_mirror.py  the study mirrored into SQLite, running trials live (vidtune dashboard)
- mlflow_logger.py  --mlflow: each trial a child run of the search's (finds runs on resume)
- progress.py       the progress line (or --verbose's table) and the best val_acc so far
- fail_fast.py      NoRetry (a deterministic trial error is not retried), StorageWatch
- resume_files.py   the files a resume reads, checked before Ray starts (damage: one line)
- quiet.py          Ray's lines that point the wrong way (Tuner.restore hint), dropped
Reading it back:
- experiment.py     a results folder as pandas tables (reads Ray's files, imports no Ray)

Nothing is imported here, so reading a results folder does not import Ray.
"""
