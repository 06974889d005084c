"""The Ray Tune layer, the only place that imports Ray.

- driver.py         run_search / resume_search: Optuna TPE proposes, Tune runs, ASHA stops
- adapter.py        the thin function trainable: checkpoint restore, tune.report
- asha.py           ResumableASHA and RungKeeper (rungs survive a resume, ray#30838)
- optuna_mirror.py  the study mirrored into SQLite, running trials live (vidtune dashboard)
- mlflow_logger.py  --mlflow: each trial a child run of the search's (finds runs on resume)
- progress.py       the progress line (or --verbose's table) and the best val_acc so far
- failures.py       NoRetry (a deterministic trial error is not retried), StorageWatch
- experiment.py     a results folder as pandas tables (reads Ray's files, imports no Ray)
- decode.py         a cluster's clip cache, built by Ray tasks spread over its nodes
- warm_start.py     earlier searches' finished trials as Optuna trials for a warm start

Nothing is imported here, so reading a results folder does not import Ray.
"""
