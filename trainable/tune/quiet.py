"""Ray's lines that tell a vidtune user the wrong way to go on, dropped from the output.

- tune.py (Ray 2.60) ends an interrupted run (Ctrl-C, or --time-budget, which stops the run
  as Ctrl-C does) with "Resume experiment with: Tuner.restore(path=..., trainable=...)";
  vidtune prints its own `vidtune resume ...` line below it, the one that works.
- experiment_analysis.py warns "Failed to fetch metrics for N trial(s): - trial:
  FileNotFoundError('Could not fetch metrics ...')" for every trial that had not reported
  yet when the run ended: a normal event (vidtune reads each trial's progress.csv itself).
  A failure other than a missing file is still shown.
"""

from __future__ import annotations

import logging

_HINT_LOGGER = "ray.tune.tune"
_METRICS_LOGGER = "ray.tune.analysis.experiment_analysis"


class _DropRayHints(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == _HINT_LOGGER:
            return "Tuner.restore(" not in message and "Resume experiment with" not in message
        if message.startswith("Failed to fetch metrics"):
            failures = message.splitlines()[1:]
            return not all("FileNotFoundError(" in line for line in failures)
        return True


_FILTER = _DropRayHints()


def quiet_ray_hints() -> None:
    """Install the filter on Ray's two loggers (idempotent)."""
    for name in (_HINT_LOGGER, _METRICS_LOGGER):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
