"""Progress of long stages: items done, rate and estimated time left, as plain dict rows.

A :class:`ProgressMeter` counts work items (images, usually) and hands a row to a callback after every
update; the callback decides where it goes (terminal, Prefect run log). The clock is injectable so the
rate and ETA are deterministic under test.

Usage::

    meter = ProgressMeter(total=n_images, label="attack pgd", emit=progress)
    for batch in batches:
        ...
        meter.update(len(batch), set="resunet/base/pgd/8")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Emit = Callable[[dict], None] | None

#: Keys every progress row carries (extra keys passed to ``update`` follow them).
ROW_KEYS = ("done", "total", "rate", "eta_s", "elapsed_s")


class ProgressMeter:
    """Counts ``total`` work items and reports done / total / rate (items per second) / ETA (seconds).

    The rate is the mean since the meter started (``done / elapsed``); the ETA is ``(total - done) / rate``.
    Before any time has passed or any item is done, ``rate`` is 0.0 and ``eta_s`` is None (unknown).

    Args:
        total: number of items the work has, >= 0.
        label: what is being counted, e.g. ``"evaluate"``; used by :meth:`text`.
        emit: called with each row (a new dict) after every :meth:`update`; None to only return rows.
        clock: monotonic seconds; defaults to :func:`time.monotonic`.
        unit: item unit shown by :meth:`text` (``"img"``).
    """

    def __init__(self, total: int, label: str, emit: Emit = None, *,
                 clock: Callable[[], float] = time.monotonic, unit: str = "img") -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"progress total must be a non-negative int, got {total!r}")
        if not isinstance(label, str) or not label:
            raise ValueError(f"progress label must be a non-empty string, got {label!r}")
        if emit is not None and not callable(emit):
            raise TypeError(f"progress emit must be callable or None, got {type(emit).__name__}")
        self.total = total
        self.label = label
        self.unit = unit
        self.done = 0
        self._emit = emit
        self._clock = clock
        self._start = clock()

    def row(self, **extra: Any) -> dict[str, Any]:
        """The current state: {done, total, rate (items/s, >= 0), eta_s (s, >= 0, or None), elapsed_s, **extra}."""
        elapsed = max(0.0, float(self._clock() - self._start))
        rate = self.done / elapsed if elapsed > 0 and self.done > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else (0.0 if self.done >= self.total else None)
        return {"done": self.done, "total": self.total, "rate": round(rate, 4),
                "eta_s": None if eta is None else round(eta, 2), "elapsed_s": round(elapsed, 3), **extra}

    def update(self, n: int = 1, **extra: Any) -> dict[str, Any]:
        """Count ``n`` more items done (0 <= done + n <= total), emit and return the row; ``extra`` keys are appended."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{self.label}: progress step must be a non-negative int, got {n!r}")
        if self.done + n > self.total:
            raise ValueError(f"{self.label}: {self.done} + {n} items done exceeds the total {self.total}")
        clash = set(extra) & set(ROW_KEYS)
        if clash:
            raise ValueError(f"{self.label}: extra progress keys {sorted(clash)} clash with the meter's own")
        self.done += n
        row = self.row(**extra)
        if self._emit is not None:
            self._emit(row)
        return row

    def text(self, row: dict[str, Any] | None = None) -> str:
        """One human line for ``row`` (default: the current state), e.g. ``evaluate: 12/40 img (30%), 3.1 img/s, ETA 9s``."""
        return f"{self.label}: {format_progress(row if row is not None else self.row(), self.unit)}"


def format_eta(seconds: float | None) -> str:
    """Seconds -> ``"9s"``, ``"3m05s"``, ``"2h01m"``; None -> ``"?"``."""
    if seconds is None:
        return "?"
    s = int(round(max(0.0, float(seconds))))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def is_progress_row(row: dict[str, Any]) -> bool:
    """True when ``row`` was made by a :class:`ProgressMeter` (carries done/total/rate/eta_s)."""
    return all(k in row for k in ROW_KEYS[:4])


def format_progress(row: dict[str, Any], unit: str = "img") -> str:
    """A meter row as text: ``12/40 img (30%), 3.1 img/s, ETA 9s[, key=value ...]`` (extra keys appended)."""
    if not is_progress_row(row):
        raise ValueError(f"not a progress row (needs {', '.join(ROW_KEYS[:4])}): keys {sorted(row)}")
    done, total = row["done"], row["total"]
    pct = 100.0 * done / total if total else 100.0
    text = f"{done}/{total} {unit} ({pct:.0f}%), {row['rate']:.3g} {unit}/s, ETA {format_eta(row['eta_s'])}"
    extra = [f"{k}={_fmt(v)}" for k, v in row.items() if k not in ROW_KEYS]
    return ", ".join([text, *extra])


def _fmt(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)
