"""Keep the console of a stage's flow run to one line per bad-input error.

A stage that fails on bad input (:data:`udcshield.errors.USER_ERRORS`, e.g. a StoreError naming a NaN in
an input array) makes Prefect log the exception with its traceback three times (task run, flow run, and
their final states) before ``python -m flows`` prints its one-line error. The filter here drops those
console records, and only those: the records still reach the Prefect API, so the flow run's log in the
UI keeps the full traceback, and every other error (a bug) is printed as Prefect prints it.

``python -m flows`` installs it (:func:`quiet_user_errors`) and sets :data:`QUIET_ENV`, so that Dask
workers started by the run install it too when they import :mod:`tasks.runner`.
"""

from __future__ import annotations

import logging
import os

from udcshield.errors import USER_ERRORS

#: Set (to "1") by ``python -m flows``; read when :mod:`tasks.runner` is imported (Dask workers).
QUIET_ENV = "UDCSHIELD_QUIET_USER_ERRORS"


class UserErrorConsoleFilter(logging.Filter):
    """Drops Prefect's records about a user error: those carrying it as ``exc_info``, and the later ones
    repeating its message (``Finished in state Failed('... <message>')``, logged at ERROR or INFO)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("prefect"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, USER_ERRORS) and record.levelno >= logging.ERROR:
            self.messages.add(str(exc))
            return False
        if not self.messages:
            return True
        text = record.getMessage()
        return not any(message and message in text for message in self.messages)


def quiet_user_errors() -> None:
    """Attach one :class:`UserErrorConsoleFilter` to every handler of the root logger (Prefect's console
    handler); idempotent. Call after Prefect has configured logging (i.e. after importing prefect)."""
    handlers = logging.getLogger().handlers
    existing = next((f for h in handlers for f in h.filters if isinstance(f, UserErrorConsoleFilter)), None)
    console_filter = existing or UserErrorConsoleFilter()
    for handler in handlers:
        if console_filter not in handler.filters:
            handler.addFilter(console_filter)


def quiet_if_requested() -> None:
    """:func:`quiet_user_errors` when :data:`QUIET_ENV` is set (in processes started by ``python -m flows``)."""
    if os.environ.get(QUIET_ENV) == "1":
        quiet_user_errors()
