"""How Podium writes its log: one line per record on stderr, as text for a person at a
terminal (`make run`) or as JSON lines for everything else (`PODIUM_LOG_FORMAT`).

No line carries an API key, an SQL parameter or a personal field (names, emails, pseudos):
the code logs ids (key ids, tenants, topics and offsets), and errors are rendered by
`describe` and `safe_traceback`, which never print a database error's text (PostgreSQL's
DETAIL quotes the row, SQLAlchemy's rendering the statement's parameters).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
DESCRIPTION_LENGTH = 500

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def configure_logging(log_format: str, level: str, stream: IO[str] | None = None) -> None:
    """Send every logger's records to `stream` (stderr) in `log_format`, from `level` up.
    Like `logging.basicConfig`, it leaves alone a log that something else set up (a test
    runner's capture); called again, it replaces its own handler."""
    root = logging.getLogger()
    # Alembic's INFO lines ("Context impl ...", "Running upgrade ...") would fill every
    # command's output: Podium says itself what it migrated (migrations.upgrade).
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if any(not isinstance(handler, _Handler) for handler in root.handlers):
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else TextLines())
    root.addHandler(handler)
    root.setLevel(level)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Podium's own handler (told apart from others by its class)."""


class TextLines(logging.Formatter):
    """`time LEVEL logger message`, tracebacks made safe."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatException(self, ei: Any) -> str:
        return safe_traceback(ei)


class JsonLines(JsonFormatter):
    """One JSON object per line: `time` (RFC 3339, UTC), `level`, `logger`, `message`, the
    record's extra fields (`topic`, `partition`, `offset`, `tenant`, `error_id`, ...) and, for
    a failure, `exc_info` (its safe traceback)."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def formatException(self, ei: Any) -> str:
        return safe_traceback(ei)


def describe(error: BaseException) -> str:
    """The error in one line, safe for a log or a dead letter's reason: its class and first
    line, except for a database's error, which shows its class and SQLSTATE only (its text
    may quote the row: `Key (email)=(...) already exists`). Never SQLAlchemy's rendering,
    which adds the statement and its parameters."""
    base = _database_error(error) or error
    name = type(base).__name__
    sqlstate = getattr(base, "sqlstate", None) if isinstance(base, _psycopg_errors()) else None
    if sqlstate:
        return f"{name} (SQLSTATE {sqlstate})"
    try:
        lines = str(base).strip().splitlines()
    except Exception:  # an exception whose message cannot be rendered
        lines = []
    text = f"{name}: {lines[0]}" if lines else name
    return text[:DESCRIPTION_LENGTH]


def _database_error(error: BaseException) -> BaseException | None:
    """The driver's error under SQLAlchemy's wrapping, if `error` is a database's."""
    wrapped = sys.modules.get("sqlalchemy.exc")
    if wrapped is not None and isinstance(error, wrapped.StatementError):
        orig = error.orig
        return orig if isinstance(orig, BaseException) else error
    if isinstance(error, (*_psycopg_errors(), sqlite3.Error)):
        return error
    return None


def _psycopg_errors() -> tuple[type[BaseException], ...]:
    """psycopg's base error, if psycopg is loaded: an error of its can only have been raised
    once it was, and the log is set up before it (a consumer joins its group before it loads
    the database's modules: bench/RESULTS.md, issue 26)."""
    driver = sys.modules.get("psycopg")
    return () if driver is None else (driver.Error,)


def safe_traceback(ei: ExcInfo) -> str:
    """The traceback as Python prints it, each database error's message replaced by
    `describe`: the frames show where, the SQLSTATE what, and no row or parameter shows."""
    _, error, _ = ei
    chain: list[tuple[BaseException, str]] = []
    link = ""
    while error is not None and all(error is not seen for seen, _ in chain):
        chain.append((error, link))
        if error.__cause__ is not None:
            error, link = error.__cause__, _CAUSE
        elif error.__context__ is not None and not error.__suppress_context__:
            error, link = error.__context__, _CONTEXT
        else:
            error = None
    parts = []
    for error, link in reversed(chain):
        header = describe(error) if _database_error(error) else _as_printed(error)
        frames = "".join(traceback.format_tb(error.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{header}{link}")
    return "".join(parts)


_CAUSE = "\n\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\n\nDuring handling of the above exception, another exception occurred:\n\n"


def _as_printed(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).rstrip()


@dataclass
class _Window:
    opened: float
    suppressed: int = 0


class Throttle:
    """At most one line per `seconds` for each subject (a topic, ...): a flood of the same
    failure is one line a second saying how many were left out, not the whole flood."""

    def __init__(self, seconds: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._seconds = seconds
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def admit(self, subject: str) -> int | None:
        """None when a line about `subject` must be left out now; else how many were left
        out since the last one."""
        now = self._clock()
        window = self._windows.get(subject)
        if window is not None and now - window.opened < self._seconds:
            window.suppressed += 1
            return None
        self._windows[subject] = _Window(now)
        return 0 if window is None else window.suppressed
