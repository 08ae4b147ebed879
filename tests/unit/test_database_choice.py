"""`podium serve` says which database keeps its state, never with its password, and warns
when that is a local SQLite file while the events come from a Kafka elsewhere."""

from __future__ import annotations

import logging

import pytest

from service.adapters.database import database_description
from service.bootstrap import log_database_choice
from service.config import Settings


def test_a_database_is_named_by_scheme_host_and_name_never_by_its_user_or_password() -> None:
    described = database_description("postgresql://podium:s3cret@db.internal:6432/podium")
    assert described == "postgresql://db.internal:6432/podium"
    assert database_description("postgresql+psycopg://db/podium") == "postgresql://db/podium"
    assert database_description("sqlite://") == "sqlite in memory"
    assert database_description("sqlite:////var/lib/podium/podium.db") == (
        "sqlite file /var/lib/podium/podium.db"
    )


@pytest.mark.parametrize(
    ("database_url", "kafka", "role", "warned"),
    [
        ("sqlite:////data/podium.db", "kafka-1.internal:9092,kafka-2.internal:9092", "all", True),
        ("sqlite:////data/podium.db", "kafka.internal:9092", "consumers", True),
        ("sqlite:////data/podium.db", "127.0.0.1:9092", "all", False),  # make run
        ("sqlite:////data/podium.db", "kafka.internal:9092", "api", False),  # it keeps nothing
        ("postgresql://db.internal/podium", "kafka.internal:9092", "all", False),
    ],
)
def test_a_local_sqlite_file_beside_a_kafka_elsewhere_is_warned_about(
    caplog: pytest.LogCaptureFixture, database_url: str, kafka: str, role: str, warned: bool
) -> None:
    settings = Settings.from_env({"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka})
    with caplog.at_level(logging.INFO, logger="service.bootstrap"):
        log_database_choice(settings, role)
    assert caplog.messages[0] == f"state in {database_description(database_url)}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) == warned
    assert all("DATABASE_URL" in w and kafka in w for w in warnings)
