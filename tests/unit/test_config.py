"""Settings from the environment (docs/rules.md#settings for the rule settings)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.config import Settings, SettingsError, declared, setting_names, settings_table
from tools import settings_table as settings_table_tool
from tools.settings_table import README, readme_table


def test_defaults_are_sqlite_local_podium_topics_5_trips_20_km_and_a_24_hour_grace() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///podium.db"
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.topic("trips") == "podium.trips"
    assert (settings.min_trips, settings.min_distance_km) == (5, 20.0)
    assert settings.late_event_grace == timedelta(hours=24)
    assert settings.kafka_bootstrap_servers is None
    assert settings.local_broker_address == "127.0.0.1:9092"
    assert settings.max_staleness_seconds == 1.0
    assert settings.tls_cert_file is None
    assert (settings.max_request_bytes, settings.max_concurrent_calls) == (16_384, 256)
    assert settings.rate_limit_per_key == 1000.0
    assert settings.statement_timeout_seconds == 10.0


def test_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PODIUM_MIN_TRIPS": "3",
            "PODIUM_LATE_EVENT_GRACE_SECONDS": "60",
            "PODIUM_TOPIC_PREFIX": "staging.",
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        }
    )
    assert settings.min_trips == 3
    assert settings.late_event_grace == timedelta(seconds=60)
    assert settings.topic("tasks") == "staging.tasks"
    assert settings.kafka_bootstrap_servers == "k:9092"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PODIUM_MIN_TRIPS", "five"),
        ("PODIUM_MIN_TRIPS", "-1"),
        ("PODIUM_MIN_DISTANCE_KM", "nan"),
        ("PODIUM_GRPC_ADDRESS", "localhost"),
        ("PODIUM_LOCAL_BROKER_ADDRESS", "9092"),
        ("PODIUM_LOCAL_BROKER_ADDRESS", "127.0.0.1:0"),
        ("PODIUM_METRICS_ADDRESS", "0.0.0.0:http"),
        ("PODIUM_LATE_EVENT_GRACE_SECONDS", "-5"),
        ("PODIUM_LATE_EVENT_GRACE_SECONDS", "1e12"),
        ("PODIUM_MIN_DISTANCE_KM", "inf"),
        ("PODIUM_MIN_DISTANCE_KM", "1e7"),
        ("PODIUM_TOPIC_PREFIX", "p" * 190),
        ("PODIUM_MAX_WATCHERS", "0"),
        ("PODIUM_MAX_STALENESS_SECONDS", "0"),
        ("PODIUM_MAX_STALENESS_SECONDS", "inf"),
        ("PODIUM_MAX_REQUEST_BYTES", "0"),
        ("PODIUM_MAX_CONCURRENT_CALLS", "-3"),
        ("PODIUM_RATE_LIMIT_PER_KEY", "-1"),
        ("PODIUM_RATE_LIMIT_PER_KEY", "inf"),
        ("PODIUM_STATEMENT_TIMEOUT_SECONDS", "0"),
        ("PODIUM_TLS_CERT_FILE", "server.crt"),
        ("PODIUM_LOG_FORMAT", "xml"),
        ("PODIUM_LOG_LEVEL", "chatty"),
        ("PODIUM_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("PODIUM_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("PODIUM_KAFKA_SASL_USERNAME", "podium"),
        ("PODIUM_KAFKA_SSL_CAFILE", "/etc/kafka/ca.pem"),
        ("PODIUM_TOPIC_REPLICATION_FACTOR", "0"),
        ("PODIUM_DRAIN_SECONDS", "-1"),
        ("PODIUM_SHUTDOWN_GRACE_SECONDS", "1e9"),
        ("PODIUM_MAX_CONNECTION_AGE_SECONDS", "nan"),
        ("PODIUM_HEALTH_ADDRESS", "nowhere"),
        ("PODIUM_HEALTH_TLS_CERT_FILE", "probe.crt"),
        ("PODIUM_TOPIC_MIN_INSYNC_REPLICAS", "0"),
        ("PODIUM_REQUIRE_DURABLE_TOPICS", "yes please"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_settings_written_as_environment_read_back_the_same() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://podium@db/podium",
            "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            "PODIUM_LOCAL_BROKER_ADDRESS": "127.0.0.1:19092",
            "PODIUM_METRICS_ADDRESS": "0.0.0.0:9100",
            "PODIUM_MIN_DISTANCE_KM": "12.5",
            "PODIUM_LATE_EVENT_GRACE_SECONDS": "90.25",
            "PODIUM_BATCH_MAX_RECORDS": "300",
            "PODIUM_MAX_STALENESS_SECONDS": "0.5",
            "PODIUM_TLS_CERT_FILE": "/etc/podium/server.crt",
            "PODIUM_TLS_KEY_FILE": "/etc/podium/server.key",
            "PODIUM_TLS_CLIENT_CA_FILE": "/etc/podium/clients.pem",
            "PODIUM_MAX_REQUEST_BYTES": "4096",
            "PODIUM_MAX_CONCURRENT_CALLS": "64",
            "PODIUM_RATE_LIMIT_PER_KEY": "12.5",
            "PODIUM_STATEMENT_TIMEOUT_SECONDS": "2.5",
            "PODIUM_LOG_FORMAT": "text",
            "PODIUM_LOG_LEVEL": "DEBUG",
            "PODIUM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PODIUM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "PODIUM_KAFKA_SASL_USERNAME": "podium",
            "PODIUM_KAFKA_SASL_PASSWORD": "hunter2",
            "PODIUM_KAFKA_SSL_CAFILE": "/etc/kafka/ca.pem",
            "PODIUM_TOPIC_REPLICATION_FACTOR": "3",
            "PODIUM_TOPIC_MIN_INSYNC_REPLICAS": "3",
            "PODIUM_REQUIRE_DURABLE_TOPICS": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        }
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env(Settings().to_env()) == Settings()


def test_log_kafka_security_and_tracing_settings_are_read_in_any_case() -> None:
    settings = Settings.from_env(
        {
            "PODIUM_LOG_FORMAT": "JSON",
            "PODIUM_LOG_LEVEL": "warning",
            "PODIUM_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
            "PODIUM_KAFKA_SASL_MECHANISM": "scram-sha-256",
            "PODIUM_KAFKA_SASL_USERNAME": "podium",
            "PODIUM_KAFKA_SASL_PASSWORD": "hunter2",
        }
    )
    assert (settings.log_format, settings.log_level) == ("json", "WARNING")
    assert settings.kafka_security_protocol == "SASL_PLAINTEXT"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    defaults = Settings.from_env({})
    assert (defaults.log_format, defaults.log_level) == (None, "INFO")
    assert (defaults.kafka_security_protocol, defaults.topic_replication_factor) == ("PLAINTEXT", 1)
    assert defaults.otlp_endpoint is None


def test_sasl_needs_its_mechanism_user_and_password() -> None:
    with pytest.raises(SettingsError, match="PODIUM_KAFKA_SASL_PASSWORD is not set"):
        Settings.from_env(
            {
                "PODIUM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "PODIUM_KAFKA_SASL_MECHANISM": "PLAIN",
                "PODIUM_KAFKA_SASL_USERNAME": "podium",
            }
        )


def test_the_kafka_password_is_never_in_the_settings_repr() -> None:
    settings = Settings.from_env(
        {
            "PODIUM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PODIUM_KAFKA_SASL_MECHANISM": "PLAIN",
            "PODIUM_KAFKA_SASL_USERNAME": "podium",
            "PODIUM_KAFKA_SASL_PASSWORD": "hunter2-secret",
        }
    )
    assert settings.kafka_sasl_password == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings)


def test_events_go_to_the_kafka_named_else_to_the_local_broker() -> None:
    assert Settings.from_env({}).kafka_servers == "127.0.0.1:9092"
    local = Settings.from_env({"PODIUM_LOCAL_BROKER_ADDRESS": "127.0.0.1:19092"})
    assert local.kafka_servers == "127.0.0.1:19092"
    named = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"})
    assert named.kafka_servers == "kafka:9092"


def test_a_stop_drains_5_s_and_gives_calls_5_s_and_connections_live_5_minutes() -> None:
    settings = Settings.from_env({})
    assert (settings.drain_seconds, settings.shutdown_grace_seconds) == (5.0, 5.0)
    assert settings.max_connection_age_seconds == 300.0
    assert settings.health_address is None
    again = Settings.from_env({**settings.to_env(), "PODIUM_DRAIN_SECONDS": "0"})
    assert again.drain_seconds == 0.0
    assert Settings.from_env(again.to_env()) == again


def test_the_readme_table_is_the_one_the_declarations_give() -> None:
    readme = README.read_text()
    start, end = readme_table(readme)
    assert readme[start:end] == settings_table()  # python -m tools.settings_table rewrites it
    assert readme.index("## Configuration") < start


def test_the_readme_table_lists_every_variable_once_with_its_default() -> None:
    rows = [row.split(" | ") for row in settings_table().splitlines()[2:]]
    assert [name.strip("|` ") for name, *_ in rows] == list(setting_names())
    assert len(set(setting_names())) == len(setting_names())
    defaults = {name.strip("|` "): default for name, default, _ in rows}
    assert defaults["PODIUM_MIN_DISTANCE_KM"] == "`20`"
    assert defaults["PODIUM_LATE_EVENT_GRACE_SECONDS"] == "`86400`"
    assert defaults["PODIUM_REQUIRE_DURABLE_TOPICS"] == "`false`"
    assert defaults["PODIUM_MAX_REQUEST_BYTES"] == "`16384`"
    assert defaults["KAFKA_BOOTSTRAP_SERVERS"] == "unset"
    assert defaults["PODIUM_LOG_FORMAT"] == "`json` (`text` for `make run`)"


def test_to_env_gives_every_variable_that_is_set_and_nothing_else() -> None:
    env = Settings().to_env()
    assert set(env) == {
        name for name in setting_names() if getattr(Settings(), _attribute(name)) is not None
    }
    assert "PODIUM_METRICS_ADDRESS" not in env
    assert env["PODIUM_LATE_EVENT_GRACE_SECONDS"] == "86400.0"
    assert env["PODIUM_REQUIRE_DURABLE_TOPICS"] == "false"
    assert Settings.from_env(env) == Settings()


def _attribute(name: str) -> str:
    [attribute] = [a for a, variable in declared() if variable.name == name]
    return attribute


def test_a_tool_rewrites_the_readme_table_and_checks_it(tmp_path: Path) -> None:
    readme = README.read_text()
    start, end = readme_table(readme)
    stale = (
        readme[:start] + "| variable | default | meaning |\n| --- | --- | --- |\n" + readme[end:]
    )
    copy = tmp_path / "README.md"
    copy.write_text(stale)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings_table_tool, "README", copy)
        assert settings_table_tool.main(["--check"]) == 1
        assert settings_table_tool.main([]) == 0
        assert settings_table_tool.main(["--check"]) == 0
    assert copy.read_text() == readme


def test_durable_topics_are_not_required_by_default_and_read_in_any_case() -> None:
    assert Settings.from_env({}).require_durable_topics is False
    assert Settings.from_env({"PODIUM_REQUIRE_DURABLE_TOPICS": "TRUE"}).require_durable_topics
    assert Settings.from_env({}).topic_min_insync_replicas == 2


def test_more_in_sync_replicas_than_replicas_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="PODIUM_TOPIC_MIN_INSYNC_REPLICAS=4 is more than"):
        Settings.from_env(
            {"PODIUM_TOPIC_REPLICATION_FACTOR": "3", "PODIUM_TOPIC_MIN_INSYNC_REPLICAS": "4"}
        )
    unreplicated = Settings.from_env({"PODIUM_TOPIC_MIN_INSYNC_REPLICAS": "4"})
    assert unreplicated.topic_replication_factor == 1  # the setting waits for replicas
