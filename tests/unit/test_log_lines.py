"""Podium's log lines: JSON objects or text, errors described without their data, floods of
the same line thinned to one a second."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from service.logs import JsonLines, TextLines, Throttle, describe, safe_traceback

PODIUM = str(Path(sys.executable).parent / "podium")
EMAIL = "ann.secret@example.com"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("podium.test.lines")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream, handler
    logger.removeHandler(handler)


def a_database_error() -> sa_exc.IntegrityError:
    """What SQLAlchemy raises for a duplicate email: its text quotes the row and the
    statement's parameters."""
    orig = psycopg.errors.UniqueViolation(
        f'duplicate key value violates unique constraint "users_pkey"\n'
        f"DETAIL:  Key (email)=({EMAIL}) already exists."
    )
    try:
        raise sa_exc.IntegrityError("INSERT INTO users VALUES (%(email)s)", {"email": EMAIL}, orig)
    except sa_exc.IntegrityError as error:
        return error


def test_json_lines_are_one_object_each_with_time_level_logger_message_and_extras(
    logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, stream, handler = logger
    handler.setFormatter(JsonLines())
    log.warning("dead letter %s[%d]", "podium.trips", 2, extra={"topic": "podium.trips"})
    log.info("second line\nwith a newline")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "dead letter podium.trips[2]"
    assert (first["level"], first["logger"], first["topic"]) == (
        "WARNING",
        "podium.test.lines",
        "podium.trips",
    )
    assert first["time"].endswith("+00:00")
    assert second["message"] == "second line\nwith a newline"


@pytest.mark.parametrize("formatter", [JsonLines, TextLines])
def test_a_logged_database_failure_shows_its_class_sqlstate_and_frames_but_no_data(
    logger: tuple[logging.Logger, io.StringIO, logging.Handler], formatter: type[logging.Formatter]
) -> None:
    log, stream, handler = logger
    handler.setFormatter(formatter())
    try:
        try:
            raise a_database_error()
        except sa_exc.IntegrityError as error:
            raise RuntimeError("the batch failed") from error
    except RuntimeError:
        log.exception("the consumer loop failed")
    written = stream.getvalue()
    assert EMAIL not in written
    assert "UniqueViolation (SQLSTATE 23505)" in written
    assert "RuntimeError: the batch failed" in written
    assert "direct cause" in written
    assert "a_database_error" in written  # the frames are there


def test_a_database_error_is_described_by_its_class_and_sqlstate() -> None:
    assert describe(a_database_error()) == "UniqueViolation (SQLSTATE 23505)"
    assert describe(psycopg.OperationalError("connection refused\nmore")) == (
        "OperationalError: connection refused"
    )
    assert describe(sqlite3.IntegrityError("UNIQUE constraint failed: users.email")) == (
        "IntegrityError: UNIQUE constraint failed: users.email"
    )
    assert describe(ValueError("first line\nsecond")) == "ValueError: first line"


def test_a_traceback_of_other_errors_is_printed_as_python_prints_it() -> None:
    try:
        raise KeyError("k")
    except KeyError as error:
        rendered = safe_traceback((KeyError, error, error.__traceback__))
    assert rendered.startswith("Traceback (most recent call last):")
    assert rendered.endswith("KeyError: 'k'")


def test_a_throttle_lets_one_line_a_second_through_per_subject_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    assert throttle.admit("trips") == 0
    assert [throttle.admit("trips") for _ in range(3)] == [None, None, None]
    assert throttle.admit("catalog") == 0
    now[0] = 1.0
    assert throttle.admit("trips") == 3
    assert throttle.admit("trips") is None


@pytest.mark.parametrize(
    ("command", "log_format", "json_lines"),
    [
        (["migrate"], None, True),
        (["migrate"], "text", False),
    ],
)
def test_commands_log_json_lines_unless_text_is_asked_for(
    tmp_path: Path, command: list[str], log_format: str | None, json_lines: bool
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'podium.db'}", "PATH": "/usr/bin:/bin"}
    if log_format:
        env["PODIUM_LOG_FORMAT"] = log_format
    done = subprocess.run(
        [PODIUM, *command], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert lines
    if json_lines:
        parsed = [json.loads(line) for line in lines]
        assert {(line["level"], line["logger"]) for line in parsed} == {("INFO", "migrations")}
    else:
        assert all(" INFO migrations migrated the database schema from" in x for x in lines)


def test_the_log_level_setting_leaves_out_lower_levels(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'podium.db'}",
        "PODIUM_LOG_LEVEL": "warning",
    }
    done = subprocess.run(
        [PODIUM, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr == ""
