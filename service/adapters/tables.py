"""The database schema (SQLAlchemy Core). Migrations in `migrations/` create exactly this.

Times are stored as integer microseconds since the epoch (UTC), so SQLite and PostgreSQL store
and compare them identically. A producer's doubles (a trip's distance and scores, a
challenge's minimum distance) are stored as the doubles they are (REAL, float8: both keep a
double exactly); tallies as exact decimals (`Exact`; docs/rules.md#exact-figures).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

from service.domain.auth import KEY_ID_LENGTH
from service.domain.bounds import EMAIL_MAX_LENGTH, ID_MAX_LENGTH, NAME_MAX_LENGTH
from service.domain.events import SCORE_KINDS, ScoreKind
from service.domain.exact import EXACT, ZERO

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Exactly `(moment - EPOCH) // timedelta(microseconds=1)`, from the difference's parts
    (a third cheaper than dividing timedeltas): ingest binds two or three times a trip."""
    since = moment - EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def micros_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


class Instant(TypeDecorator[datetime]):
    """An aware UTC datetime kept as integer microseconds since the epoch."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], int | None]:
        """`process_bind_param` without the wrapping layer (BigInteger binds as it is, on
        either database): ingest binds two or three times a trip by the ten thousand."""
        return micros_or_none

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(int(value))


class Exact(TypeDecorator[Decimal]):
    """An exact decimal (a tally's figures): NUMERIC on PostgreSQL, exact in arithmetic too,
    so `x = x + delta` adds exactly; TEXT on SQLite, whose own numbers are int64 or doubles,
    where `exact_add` (registered on every connection) adds two of them."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return str(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Decimal | None], Any] | None:
        """`process_bind_param` without the wrapping layer: ingest binds a tally's figures
        by the hundred thousand."""
        return None if dialect.name == "postgresql" else _text

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def _text(value: Decimal | None) -> str | None:
    if value is ZERO:  # the figures of the scores a trip lacks: most of a month's columns
        return "0"
    return None if value is None else str(value)


EXACT_ADD = "exact_add"
"""The SQL function adding two `Exact` values on SQLite."""


def exact_add(stored: str | None, delta: str | None) -> str | None:
    """`stored + delta`, exactly, as SQLite keeps `Exact` values. Never raises inside SQLite
    (which would report it as a failure of its own, retried for ever): a sum it cannot make
    is NULL, which the NOT NULL column refuses, so the batch that caused it is dead-lettered."""
    try:
        return str(EXACT.add(Decimal(stored), Decimal(delta)))  # type: ignore[arg-type]
    except (ArithmeticError, TypeError, ValueError):
        return None


metadata = MetaData()

Id = String(ID_MAX_LENGTH)
"""Ids and group labels; the bounds module says why, and validation keeps longer ones out."""


def _tally_columns(prefix: str) -> list[Column[Any]]:
    return [
        Column(f"{prefix}_trips", Integer, nullable=False, default=0),
        Column(f"{prefix}_km", Exact, nullable=False),
        Column(f"{prefix}_weighted", Exact, nullable=False),
        Column(f"{prefix}_weight", Exact, nullable=False),
    ]


# --- operations ----------------------------------------------------------------------------

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("tenant_id", Id, nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("key_id", String(KEY_ID_LENGTH), nullable=False, unique=True),
    Column("expires_at", Instant),
    Column("revoked_at", Instant),
    Column("last_used_at", Instant),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer_group", Id, primary_key=True),
    Column("topic", Id, primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("next_offset", BigInteger, nullable=False),
)

service_state = Table(
    "service_state",
    metadata,
    Column("name", Id, primary_key=True),
    Column("value", Text, nullable=False),
)

state_versions = Table(
    "state_versions",
    metadata,
    Column("key", Id, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("as_of", Instant, nullable=True),
    # The record (arrival) time of the newest event that moved the version; NULL for
    # versions moved by no event (API keys) or before it was kept.
)

state_version_shards = Table(
    "state_version_shards",
    metadata,
    Column("key", Id, primary_key=True),
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("as_of", Instant, nullable=True),
    # The shards of a state version that writers holding its tenant's lock shared move, one
    # each (service.app.shards); the version is its own row's plus its shards'.
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", Id, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("record_timestamp_ms", BigInteger, nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("tenant_id", Id, nullable=True),
    Column("event_id", Id, nullable=True),
    Column("first_failed_at", Instant, nullable=False),
    Column("last_failed_at", Instant, nullable=False),
    Column("attempts", Integer, nullable=False),
    Index("ix_dead_letters_topic", "topic"),
    Index("ix_dead_letters_tenant", "tenant_id"),
    Index("uq_dead_letters_record", "topic", "partition", "offset", unique=True),
)

ignored_events = Table(
    "ignored_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", Id, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("tenant_id", Id, nullable=False),
    Column("event_id", Id, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("ignored_at", Instant, nullable=False),
    Index("ix_ignored_events_tenant", "tenant_id"),
    Index("uq_ignored_events_record", "topic", "partition", "offset", unique=True),
)

results_outbox = Table(
    "results_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("tenant_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("window_name", Id, nullable=False),
    Column("occurred_at", Instant, nullable=False),
    Column("recorded_at", Instant, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("sent_at", Instant, nullable=True),
    Index("uq_results_outbox_event", "event_id", unique=True),
    Index("ix_results_outbox_sent", "sent_at"),
)
"""The results of frozen windows (`service.app.results`), written in the transaction that
saw the freeze, relayed to `<prefix>results`; `sent_at` once the broker acknowledged."""

# --- catalog -------------------------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("email", String(EMAIL_MAX_LENGTH), nullable=False),
    Column("email_lower", String(EMAIL_MAX_LENGTH), nullable=False),
    Column("firstname", String(NAME_MAX_LENGTH), nullable=False),
    Column("lastname", String(NAME_MAX_LENGTH), nullable=False),
    Column("pseudo", String(NAME_MAX_LENGTH), nullable=False),
    Column("version_at", Instant, nullable=False),
    Column("version_event", Id, nullable=False),
    Index("ix_users_email", "tenant_id", "email_lower"),
)

profile_versions = Table(
    "profile_versions",
    metadata,
    # Every version of every profile, with when it arrived: a frozen window keeps the group
    # membership of the versions that arrived before its freeze.
    Column("tenant_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("version_at", Instant, primary_key=True),
    Column("version_event", Id, primary_key=True),
    Column("arrived_at", Instant, nullable=False),
    Index("ix_profile_versions_arrival", "tenant_id", "arrived_at"),
)

profile_version_groups = Table(
    "profile_version_groups",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("version_at", Instant, primary_key=True),
    Column("version_event", Id, primary_key=True),
    Column("group_label", Id, primary_key=True),
    Index("ix_profile_version_groups_group", "tenant_id", "group_label", "user_id"),
)

user_groups = Table(
    "user_groups",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("group_label", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Index("ix_user_groups_user", "tenant_id", "user_id"),
)

# --- trips and driver ranking --------------------------------------------------------------

SCORE_COLUMNS: Mapping[ScoreKind, str] = {
    ScoreKind.SAFETY: "safety",
    ScoreKind.ECO_DRIVING: "eco_driving",
    ScoreKind.DISTRACTION: "distraction",
    ScoreKind.SPEEDING: "speeding",
}
"""The columns of each score, for trips and driver months."""

trips = Table(
    "trips",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("trip_id", Id, primary_key=True),
    Column("user_id", Id, nullable=False),
    # Null until the trip_completed event is seen (a deletion may come first).
    Column("ended_at", Instant, nullable=True),
    Column("distance_km", Float, nullable=True),
    *(Column(SCORE_COLUMNS[kind], Float, nullable=True) for kind in SCORE_KINDS),
    Column("arrived_at", Instant, nullable=True),
    Column("deleted_arrived_at", Instant, nullable=True),
    Index("ix_trips_user_ended", "tenant_id", "user_id", "ended_at"),
)


driver_months = Table(
    "driver_months",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("month", Integer, primary_key=True, autoincrement=False),
    Column("user_id", Id, primary_key=True),
    Column("trips", Integer, nullable=False),
    Column("km", Exact, nullable=False),
    *(Column(f"{SCORE_COLUMNS[k]}_weighted", Exact, nullable=False) for k in SCORE_KINDS),
    *(Column(f"{SCORE_COLUMNS[k]}_weight", Exact, nullable=False) for k in SCORE_KINDS),
    Column("changed_in", BigInteger, nullable=True),
    # The version of the tenant's calendar month (state_versions) the batch that last changed
    # this row moved it to: what a kept board reads its changes by. NULL for rows last changed
    # before it was kept (migration 0012). The index is partial so that only a query that
    # asks for changes can use it: a planner without statistics took it for the look-up of
    # one driver's month, reading the whole month for each driver.
    Index(
        "ix_driver_months_changed",
        "tenant_id",
        "year",
        "month",
        "changed_in",
        postgresql_where=text("changed_in IS NOT NULL"),
        sqlite_where=text("changed_in IS NOT NULL"),
    ),
)

# --- challenges ----------------------------------------------------------------------------

challenges = Table(
    "challenges",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("challenge_id", Id, primary_key=True),
    Column("title", Text, nullable=False),
    Column("theme", Integer, nullable=False),
    Column("start_at", Instant, nullable=False),
    Column("end_at", Instant, nullable=False),
    Column("min_trips", Integer, nullable=False),
    Column("min_distance_km", Float, nullable=False),
    Column("pre_period_us", BigInteger, nullable=False),
    Column("pre_min_trips", Integer, nullable=False),
    Column("version_at", Instant, nullable=False),
    Column("version_event", Id, nullable=False),
)

challenge_groups = Table(
    "challenge_groups",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("challenge_id", Id, primary_key=True),
    Column("group_label", Id, primary_key=True),
)

challenge_registrations = Table(
    "challenge_registrations",
    metadata,
    # Every registration as it came: a challenge's entry is the earliest that arrived before
    # the challenge froze, whatever order they came in.
    Column("tenant_id", Id, primary_key=True),
    Column("challenge_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("registered_at", Instant, primary_key=True),
    Column("arrived_at", Instant, primary_key=True),
)

challenge_entries = Table(
    "challenge_entries",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("challenge_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("registered_at", Instant, nullable=False),
    Column("arrived_at", Instant, nullable=False),
    *_tally_columns("during"),
    *_tally_columns("before"),
    Index("ix_challenge_entries_user", "tenant_id", "user_id"),
)

# --- path sessions -------------------------------------------------------------------------

path_sessions = Table(
    "path_sessions",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("session_id", Id, primary_key=True),
    Column("path_id", Id, nullable=False),
    Column("name", Text, nullable=False),
    Column("starts_at", Instant, nullable=True),
    Column("ends_at", Instant, nullable=True),
    Column("steps", Text, nullable=False),
    Column("version_at", Instant, nullable=False),
    Column("version_event", Id, nullable=False),
)

path_learners = Table(
    "path_learners",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("session_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("enrolled_at", Instant, nullable=True),
    Column("unenrolled_at", Instant, nullable=True),
)

step_attempts = Table(
    "step_attempts",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("session_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("attempt_id", Id, primary_key=True),
    Column("step_id", Id, nullable=False),
    Column("started_at", Instant, nullable=False),
    Column("ended_at", Instant, nullable=False),
    Column("time_spent_ms", BigInteger, nullable=False),
    Column("score", Float, nullable=True),
    Column("outside_path", Boolean, nullable=False),
)

step_corrections = Table(
    "step_corrections",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("session_id", Id, primary_key=True),
    Column("user_id", Id, primary_key=True),
    Column("attempt_id", Id, primary_key=True),
    Column("step_id", Id, nullable=False),
    Column("score", Float, nullable=False),
    Column("corrected_at", Instant, nullable=False),
)

# --- tasks ---------------------------------------------------------------------------------

tasks = Table(
    "tasks",
    metadata,
    # A task's facts (service.domain.tasks.TaskFacts); its status is read from them and from
    # the pauses. The creation is null while only later events of the task have come.
    Column("tenant_id", Id, primary_key=True),
    Column("task_id", Id, primary_key=True),
    Column("type", Integer, nullable=True),
    Column("nb_items", Integer, nullable=True),
    Column("created_at", Instant, nullable=True),
    Column("created_version_at", Instant, nullable=True),
    Column("created_version_event", Id, nullable=True),
    Column("started_at", Instant, nullable=True),
    Column("completed_at", Instant, nullable=True),
    Column("failed_at", Instant, nullable=True),
    Column("failure_reason", Text, nullable=False),
    Column("canceled_at", Instant, nullable=True),
)

task_progress = Table(
    "task_progress",
    metadata,
    # A task's progress reports that can still matter (service.domain.tasks.with_report), at
    # their envelopes' times: a report dated after the task ended changes nothing.
    Column("tenant_id", Id, primary_key=True),
    Column("task_id", Id, primary_key=True),
    Column("reported_at", Instant, primary_key=True),
    Column("remaining", Integer, nullable=False),
)

task_pauses = Table(
    "task_pauses",
    metadata,
    Column("tenant_id", Id, primary_key=True),
    Column("type", Integer, primary_key=True, autoincrement=False),
    Column("paused_at", Instant, primary_key=True),
)
