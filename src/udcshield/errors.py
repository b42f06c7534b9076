"""The one-line error of every command line path (``udcshield run``, ``python -m flows``, so ``dvc repro``).

Bad input (a missing or corrupt file, a wrong shape, NaN, missing weights, an altered array) raises one
of :data:`USER_ERRORS` with a message naming the culprit; bad params raise
:class:`~udcshield.config.ConfigError` (a ValueError) naming the dotted key. Both command lines print the
same single line for the same error, built here, and exit with the same status.
"""

from __future__ import annotations

#: Exceptions that are reported as one line (no traceback): OSError for missing or unreadable files and
#: folders, ValueError for bad content or params (StoreError, ConfigError), RuntimeError for failed checks.
USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError)

#: Exit status for bad params (found before any work) and for a stage that failed on its input.
EXIT_PARAMS = 2
EXIT_STAGE = 1


def params_error_line(exc: BaseException) -> str:
    """``udcshield: error: <message>`` for bad params (exit :data:`EXIT_PARAMS`)."""
    return f"udcshield: error: {exc}"


def stage_error_line(stage: str, exc: BaseException) -> str:
    """``udcshield: error in stage <stage>: <message>`` for a stage that failed (exit :data:`EXIT_STAGE`)."""
    return f"udcshield: error in stage {stage}: {exc}"
