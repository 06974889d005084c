"""Which trial errors can succeed on a retry, and errors as one line (no Ray here).

A config or data error raises the same way every time: retrying it from a checkpoint wastes
the retries (the adapter ends such a trial at once); so does a CUDA out-of-memory error over
the trial's own memory cap. A killed worker, a lost node or a full shared GPU can pass on a
retry: those keep `--max-failures`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# Torch reports a tensor shape that does not fit a layer as a plain RuntimeError; these are
# the words its shape checks use (conv, pool, linear, LSTM, view, broadcasting, load_state_dict).
_SHAPE = re.compile(r"\bshapes?\b|\bsizes?\b|\bchannels\b|\bdimension\b")
# An exception line as Python prints it last in a traceback: "module.Name: message".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)\b.*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_deterministic(exc: BaseException) -> bool:
    """True for an error that would raise again on a retry: ValueError/TypeError from the
    configs' and data's own validation, torch's shape errors, and CUDA out of memory over the
    trial's own cap (core.trial.TrialMemoryError.over_cap). Any other CUDA OOM is transient."""
    import torch  # here, so reading results (error_counts) does not load torch

    if isinstance(exc, torch.OutOfMemoryError):
        return bool(getattr(exc, "over_cap", False))
    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError)):
        return True
    return isinstance(exc, RuntimeError) and bool(_SHAPE.search(str(exc)))


def one_line(exc: BaseException) -> str:
    """'ValueError: num_classes is 1, but must be >= 2': the type and the first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def last_error_line(text: str) -> str:
    """The exception line of the last failure in a Ray error.txt (or any traceback text).

    Ray appends one block per failure ("Failure # n (occurred at ...)" then the traceback);
    the exception line is the last unindented 'Name: message' line. A dead worker has no
    traceback: its block's first line says what happened.
    """
    block = _ANSI.sub("", re.split(r"^Failure # \d+ \(occurred at [^)]*\)\n", text, flags=re.M)[-1])
    lines = [line.rstrip() for line in block.splitlines() if line.strip()]
    found = [line for line in lines if _EXCEPTION_LINE.match(line)]
    if found:
        return found[-1]
    return lines[0] if lines else ""


def error_counts(errors: Iterable[str]) -> list[tuple[str, int]]:
    """[(error line, trials)], most common first, ties in first-seen order; blanks left out."""
    counts = Counter(e for e in errors if isinstance(e, str) and e)
    return counts.most_common()
