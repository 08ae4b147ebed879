"""The one settings object, built from an injected environment mapping.

Each setting is declared once, as a field of `Settings` made by `setting(...)`: its variable,
how it is parsed, its default and what it means. From that one declaration come `from_env`,
`to_env`, the variables each command's `--help` names (`setting_names`) and the README's
table, "Configuration" (`settings_table`; `python -m tools.settings_table` rewrites it, a test
checks it). The rule settings: docs/rules.md#settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields
from datetime import timedelta
from typing import Any

from service.domain.bounds import CHALLENGE_MIN_DISTANCE_MAX_KM, DURATION_MAX, ID_MAX_LENGTH

ROLES = ("all", "api", "consumers")
"""What a `podium serve` runs (`--role`): the API and the consumers, or one of them."""


class SettingsError(ValueError):
    """A setting is malformed; start-up stops with a message naming it."""


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RESULTS_FORMATS = ("protobuf", "json")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PARTITIONERS = ("murmur2", "crc32")
DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class Variable:
    """How a setting is read from the environment, and how the README shows it."""

    name: str
    parse: Callable[[str], Any]
    """From the variable's text (empty or missing: the default); `ValueError` says why not."""
    meaning: str
    default_text: str | None
    """The README's default, when the default value alone does not say it."""


def setting(
    name: str,
    parse: Callable[[str], Any],
    default: Any,
    meaning: str,
    *,
    default_text: str | None = None,
    secret: bool = False,
) -> Any:
    """A field of `Settings`, read from the variable `name`; a `secret` one is never shown
    (not in the settings' repr, nor in any log line)."""
    variable = Variable(name, parse, meaning, default_text)
    return field(default=default, repr=not secret, metadata={"variable": variable})


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """Any of `choices`, in any case."""

    def parse(raw: str) -> str:
        value = raw.strip().upper()
        for choice in choices:
            if choice.upper() == value:
                return choice
        raise ValueError(f"expected one of {', '.join(choices)}")

    return parse


def _as_given(raw: str) -> str:
    return raw


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _host_port(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT")
    return raw


def _listening_address(raw: str) -> str:
    """HOST:PORT with a port of its own (0 would pick one at random: nobody could find it)."""
    address = _host_port(raw)
    if int(address.rpartition(":")[2]) == 0:
        raise ValueError("expected HOST:PORT with a port from 1 to 65535")
    return address


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError("expected true or false")
    return value == "true"


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < float("inf"):
        raise ValueError("must be a number >= 0")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a number > 0")
    return value


def _bounded_seconds(raw: str) -> float:
    """Seconds from 0 to a day: a stop or a connection's age, never longer."""
    value = _non_negative_float(raw)
    if value > DAY_SECONDS:
        raise ValueError(f"must be at most {DAY_SECONDS}")
    return value


def _seconds(raw: str) -> timedelta:
    """A duration within the bound of every duration (`bounds.DURATION_MAX`): the freeze
    arithmetic adds it to times."""
    value = _non_negative_float(raw)
    if value > DURATION_MAX.total_seconds():
        raise ValueError(f"must be at most {DURATION_MAX.total_seconds():.0f} (3,660 days)")
    return timedelta(seconds=value)


@dataclass(frozen=True, slots=True)
class _IngestSettings:
    """Where events come from and how they are folded: the database, Kafka and its topics."""

    database_url: str = setting(
        "DATABASE_URL",
        _non_empty,
        "sqlite:///podium.db",
        (
            "SQLite file, or `postgresql://user@host/db` (libpq parameters in the query override "
            "Podium's link defaults: `connect_timeout=10`, keepalives after 10 s idle every 5 s, "
            "`tcp_user_timeout=30000`)"
        ),
    )
    kafka_bootstrap_servers: str | None = setting(
        "KAFKA_BOOTSTRAP_SERVERS",
        _as_given,
        None,
        "any Kafka; `make run` starts a local broker when unset",
    )
    local_broker_address: str = setting(
        "PODIUM_LOCAL_BROKER_ADDRESS",
        _listening_address,
        "127.0.0.1:9092",
        (
            "where `make run` starts that broker (a taken address stops it, naming the address); "
            "`podium demo` and `podium produce` send there when `KAFKA_BOOTSTRAP_SERVERS` is unset"
        ),
    )
    topic_prefix: str = setting(
        "PODIUM_TOPIC_PREFIX",
        _non_empty,
        "podium.",
        "topics are `<prefix>catalog`, `trips`, `enrollments`, `tasks`",
    )
    consumer_group: str = setting(
        "PODIUM_CONSUMER_GROUP",
        _non_empty,
        "podium",
        "instances sharing it split the partitions",
    )
    instance_id: str | None = setting(
        "PODIUM_INSTANCE_ID",
        _non_empty,
        None,
        (
            "this member's stable name in the consumer group (a StatefulSet's pod name): a "
            "process started under a name removes the member its predecessor left behind, so a "
            "restart after a crash does not wait for that session to end; unique among running "
            "members ([docs/operations.md](docs/operations.md#hand-over))"
        ),
    )
    session_timeout_seconds: float = setting(
        "PODIUM_SESSION_TIMEOUT_SECONDS",
        _positive_float,
        6.0,
        (
            "a group member not heard from this long is put out of the group (heartbeats every "
            "0.5 s, or every third of a shorter session); Kafka brokers accept 6 to 1800 s by "
            "default"
        ),
    )
    topic_partitions: int = setting(
        "PODIUM_TOPIC_PARTITIONS",
        _positive_int,
        6,
        "partitions of topics Podium creates",
    )
    lock_partitioner: str = setting(
        "PODIUM_LOCK_PARTITIONER",
        _one_of(PARTITIONERS),
        "murmur2",
        (
            "how the producers partition the trips and enrollments topics by key: `murmur2` "
            "(Kafka's default: Java, aiokafka, `podium produce`) or `crc32` (librdkafka's "
            "default, as confluent-kafka); consumers lock users by the partition it gives them, "
            "so that those of different partitions never wait for each other. Any value is "
            "correct; the first consumer's is kept in the database (docs/operations.md)"
        ),
    )
    batch_max_records: int = setting(
        "PODIUM_BATCH_MAX_RECORDS",
        _positive_int,
        20_000,
        "records folded per transaction at most",
    )
    kafka_security_protocol: str = setting(
        "PODIUM_KAFKA_SECURITY_PROTOCOL",
        _one_of(KAFKA_SECURITY_PROTOCOLS),
        "PLAINTEXT",
        (
            "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, for every Kafka client of Podium "
            "(consumers, topic creation, `podium offsets`, and the producers of `podium produce` "
            "and `podium demo`)"
        ),
    )
    kafka_sasl_mechanism: str | None = setting(
        "PODIUM_KAFKA_SASL_MECHANISM",
        _one_of(KAFKA_SASL_MECHANISMS),
        None,
        "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; with `SASL_*` only, and then required",
    )
    kafka_sasl_username: str | None = setting(
        "PODIUM_KAFKA_SASL_USERNAME",
        _non_empty,
        None,
        "the SASL user; with `SASL_*` only, and then required",
    )
    kafka_sasl_password: str | None = setting(
        "PODIUM_KAFKA_SASL_PASSWORD",
        _as_given,
        None,
        (
            "the SASL password; with `SASL_*` only, and then required. Never logged, never in the "
            "settings' repr"
        ),
        secret=True,
    )
    kafka_ssl_cafile: str | None = setting(
        "PODIUM_KAFKA_SSL_CAFILE",
        _non_empty,
        None,
        (
            "PEM file of the CA that signed the brokers' certificates, with `SSL` or `SASL_SSL` "
            "(unset: the system's CAs); brokers' host names are checked"
        ),
    )
    topic_replication_factor: int = setting(
        "PODIUM_TOPIC_REPLICATION_FACTOR",
        _positive_int,
        1,
        (
            "replicas of each partition of the topics Podium creates (only missing topics are "
            "created; 3 is usual in production)"
        ),
    )
    topic_min_insync_replicas: int = setting(
        "PODIUM_TOPIC_MIN_INSYNC_REPLICAS",
        _positive_int,
        2,
        (
            "`min.insync.replicas` of the topics Podium creates with more than one replica (at most"
            " the replication factor)"
        ),
    )
    require_durable_topics: bool = setting(
        "PODIUM_REQUIRE_DURABLE_TOPICS",
        _boolean,
        False,
        (
            "`true`: refuse to start (exit code 1) when a topic Podium reads can lose events "
            "(finite `retention.ms` or `retention.bytes`, `cleanup.policy` with `compact`) instead "
            "of warning; a config the broker does not report never stops it "
            "([docs/events.md](docs/events.md#topics-that-keep-every-event))"
        ),
    )


@dataclass(frozen=True, slots=True)
class _RuleSettings(_IngestSettings):
    """The rule settings (docs/rules.md#settings)."""

    min_trips: int = setting(
        "PODIUM_MIN_TRIPS",
        _non_negative_int,
        5,
        "trips a driver needs in a month to be ranked",
    )
    min_distance_km: float = setting(
        "PODIUM_MIN_DISTANCE_KM",
        _non_negative_float,
        20.0,
        (
            "kilometres a driver needs in a month to be ranked (compared with the exact sum of "
            "their trips)"
        ),
    )
    late_event_grace: timedelta = setting(
        "PODIUM_LATE_EVENT_GRACE_SECONDS",
        _seconds,
        timedelta(hours=24),
        "a month (or challenge) freezes this long after its end",
    )


@dataclass(frozen=True, slots=True)
class _ApiSettings(_RuleSettings):
    """The API: where it listens, its TLS, its limits, how it drains."""

    grpc_address: str = setting(
        "PODIUM_GRPC_ADDRESS",
        _host_port,
        "127.0.0.1:50051",
        "where the API listens",
    )
    max_staleness_seconds: float = setting(
        "PODIUM_MAX_STALENESS_SECONDS",
        _positive_float,
        1.0,
        "while an answer is rebuilt, callers get the previous one if it is at most this old",
    )
    board_cache_mb: int = setting(
        "PODIUM_BOARD_CACHE_MB",
        _positive_int,
        256,
        "the boards and answers an API instance keeps, least recently used out beyond this",
    )
    tls_cert_file: str | None = setting(
        "PODIUM_TLS_CERT_FILE",
        _non_empty,
        None,
        (
            "with `PODIUM_TLS_KEY_FILE`: the API serves TLS only (PEM certificate, chain after it);"
            " health and reflection too"
        ),
    )
    tls_key_file: str | None = setting(
        "PODIUM_TLS_KEY_FILE",
        _non_empty,
        None,
        "the certificate's private key (PEM)",
    )
    tls_client_ca_file: str | None = setting(
        "PODIUM_TLS_CLIENT_CA_FILE",
        _non_empty,
        None,
        "also require client certificates signed by this CA (mutual TLS); needs the two above",
    )
    max_request_bytes: int = setting(
        "PODIUM_MAX_REQUEST_BYTES",
        _positive_int,
        16 * 1024,
        "a request message, and its metadata, at most this big: `request_too_large`",
    )
    max_concurrent_calls: int = setting(
        "PODIUM_MAX_CONCURRENT_CALLS",
        _positive_int,
        256,
        "calls running at once per instance: beyond, `too_many_calls` with a `RetryInfo`",
    )
    rate_limit_per_key: float = setting(
        "PODIUM_RATE_LIMIT_PER_KEY",
        _non_negative_float,
        1000.0,
        (
            "calls a second per key and instance (bursts of a second's worth; `0`: none): beyond, "
            "`rate_limited` with a `RetryInfo`"
        ),
    )
    statement_timeout_seconds: float = setting(
        "PODIUM_STATEMENT_TIMEOUT_SECONDS",
        _positive_float,
        10.0,
        (
            "an answer's statements are cancelled after this, or after what is left of the call's "
            "deadline (on SQLite, all of them together)"
        ),
    )
    max_watchers: int = setting(
        "PODIUM_MAX_WATCHERS",
        _positive_int,
        10_000,
        (
            "`WatchDriverRanking` streams an instance serves at once (not counted among the "
            "concurrent calls)"
        ),
    )
    drain_seconds: float = setting(
        "PODIUM_DRAIN_SECONDS",
        _bounded_seconds,
        5.0,
        (
            "on SIGTERM, health says `NOT_SERVING` and calls are still answered this long before "
            'the instance stops taking calls ("Deploying")'
        ),
        default_text="`5` (`make run`: `0`)",
    )
    shutdown_grace_seconds: float = setting(
        "PODIUM_SHUTDOWN_GRACE_SECONDS",
        _bounded_seconds,
        5.0,
        (
            "calls in flight when the instance stops taking calls, or when their connection reaches"
            " its maximum age, get this long to finish"
        ),
    )
    max_connection_age_seconds: float = setting(
        "PODIUM_MAX_CONNECTION_AGE_SECONDS",
        _bounded_seconds,
        300.0,
        (
            "a client's connection is closed (GOAWAY) once this old (gRPC spreads it by 10%), so "
            "clients reconnect and spread over new instances; `0`: never"
        ),
    )


@dataclass(frozen=True, slots=True)
class Settings(_ApiSettings):
    """Every setting of Podium (the bases group them by what they set)."""

    metrics_address: str | None = setting(
        "PODIUM_METRICS_ADDRESS",
        _host_port,
        None,
        "`host:port` serving Prometheus metrics",
    )
    results_format: str = setting(
        "PODIUM_RESULTS_FORMAT",
        _one_of(RESULTS_FORMATS),
        "protobuf",
        (
            "how results go out to `<prefix>results`: `protobuf` (the binary `ResultEvent`) or "
            "`json` (its proto3 JSON form, with the header `content-type: application/json`)"
        ),
    )
    log_format: str | None = setting(
        "PODIUM_LOG_FORMAT",
        _one_of(LOG_FORMATS),
        None,
        (
            "`json`: one JSON object per line (`time`, `level`, `logger`, `message`, and fields "
            "such as `topic`, `partition`, `offset`, `tenant`, `error_id`, `exc_info`); `text`: "
            "`time LEVEL logger message`"
        ),
        default_text="`json` (`text` for `make run`)",
    )
    log_level: str = setting(
        "PODIUM_LOG_LEVEL",
        _one_of(LOG_LEVELS),
        "INFO",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`",
    )
    otlp_endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        _as_given,
        None,
        (
            "where OpenTelemetry spans go over OTLP/gRPC (e.g. `http://collector:4317`); unset, "
            "tracing is off. The other `OTEL_*` variables (`OTEL_SERVICE_NAME`, "
            "`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, ...) apply as OpenTelemetry "
            "defines them"
        ),
    )
    health_address: str | None = setting(
        "PODIUM_HEALTH_ADDRESS",
        _host_port,
        None,
        (
            "`host:port` of a second listener serving `grpc.health.v1` alone, plaintext, for probes"
            " that cannot present a client certificate under mutual TLS"
        ),
    )
    health_tls_ca_file: str | None = setting(
        "PODIUM_HEALTH_TLS_CA_FILE",
        _non_empty,
        None,
        (
            "`podium health` over TLS: the CA that signed the API's certificate (unset: "
            "`PODIUM_TLS_CERT_FILE`, enough when it holds the chain up to a root)"
        ),
    )
    health_tls_cert_file: str | None = setting(
        "PODIUM_HEALTH_TLS_CERT_FILE",
        _non_empty,
        None,
        (
            "`podium health` under mutual TLS: the client certificate it presents, with "
            "`PODIUM_HEALTH_TLS_KEY_FILE` (unset: the API's own, enough when the client CA signed "
            "it for client use)"
        ),
    )
    health_tls_key_file: str | None = setting(
        "PODIUM_HEALTH_TLS_KEY_FILE",
        _non_empty,
        None,
        "the key of that client certificate",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        for attribute, variable in declared():
            raw = env.get(variable.name)
            if raw is None or raw == "":
                continue
            try:
                values[attribute] = variable.parse(raw)
            except ValueError as error:
                raise SettingsError(f"{variable.name}={raw!r} is not valid: {error}") from None
        return _checked(cls(**values))

    def to_env(self) -> dict[str, str]:
        """The environment variables that give these settings (for starting `podium serve`)."""
        return {
            variable.name: _as_text(value)
            for attribute, variable in declared()
            if (value := getattr(self, attribute)) is not None
        }

    @property
    def kafka_servers(self) -> str:
        """Where events go and come from: KAFKA_BOOTSTRAP_SERVERS, else the local broker that
        `make run` starts."""
        return self.kafka_bootstrap_servers or self.local_broker_address

    def topic(self, name: str) -> str:
        """The Kafka topic of a family: `catalog`, `trips`, `enrollments` or `tasks`."""
        return f"{self.topic_prefix}{name}"


def declared() -> Iterator[tuple[str, Variable]]:
    """Each setting's attribute and variable, in the order of the declarations."""
    for each in fields(Settings):
        yield each.name, each.metadata["variable"]


def setting_names() -> tuple[str, ...]:
    """Every environment variable the settings are read from, in the order they are declared
    (the commands' `--help` name theirs from these)."""
    return tuple(variable.name for _, variable in declared())


def settings_table() -> str:
    """The README's table of settings, in Markdown."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    by_attribute = {each.name: each for each in fields(Settings)}
    for attribute, variable in declared():
        default = variable.default_text or _default_text(by_attribute[attribute])
        rows.append(f"| `{variable.name}` | {default} | {variable.meaning} |")
    return "\n".join(rows) + "\n"


def _default_text(declaration: Field[Any]) -> str:
    value = declaration.default
    return "unset" if value is None else f"`{_as_text(value, readable=True)}`"


def _as_text(value: object, *, readable: bool = False) -> str:
    """A setting's value as its variable gives it; `readable`: numbers without a needless
    fraction (the README's `20`, not `20.0`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, float):
        return f"{value:g}" if readable else repr(value)
    return str(value)


def _checked(settings: Settings) -> Settings:
    """Settings that only make sense together."""
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        missing = "PODIUM_TLS_KEY_FILE" if settings.tls_key_file is None else "PODIUM_TLS_CERT_FILE"
        raise SettingsError(
            f"{missing} is not set: PODIUM_TLS_CERT_FILE and PODIUM_TLS_KEY_FILE go together"
        )
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise SettingsError(
            "PODIUM_TLS_CLIENT_CA_FILE needs PODIUM_TLS_CERT_FILE and PODIUM_TLS_KEY_FILE"
        )
    if (settings.health_tls_cert_file is None) != (settings.health_tls_key_file is None):
        raise SettingsError(
            "PODIUM_HEALTH_TLS_CERT_FILE and PODIUM_HEALTH_TLS_KEY_FILE go together"
        )
    if settings.min_distance_km > CHALLENGE_MIN_DISTANCE_MAX_KM:
        raise SettingsError(
            f"PODIUM_MIN_DISTANCE_KM must be at most {CHALLENGE_MIN_DISTANCE_MAX_KM:,.0f}"
        )
    replicas = settings.topic_replication_factor
    if replicas > 1 and settings.topic_min_insync_replicas > replicas:
        raise SettingsError(
            f"PODIUM_TOPIC_MIN_INSYNC_REPLICAS={settings.topic_min_insync_replicas} is more than "
            f"PODIUM_TOPIC_REPLICATION_FACTOR={replicas}: no write could ever be acknowledged"
        )
    if len(settings.topic("enrollments")) > ID_MAX_LENGTH:
        raise SettingsError(
            f"PODIUM_TOPIC_PREFIX is too long: topic names must fit {ID_MAX_LENGTH} characters"
        )
    _check_kafka_security(settings)
    return settings


def _check_kafka_security(settings: Settings) -> None:
    protocol = settings.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    given = {
        "PODIUM_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "PODIUM_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "PODIUM_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password,
    }
    if sasl and (missing := [name for name, value in given.items() if value is None]):
        raise SettingsError(
            f"{missing[0]} is not set: PODIUM_KAFKA_SECURITY_PROTOCOL={protocol} needs "
            "PODIUM_KAFKA_SASL_MECHANISM, PODIUM_KAFKA_SASL_USERNAME and "
            "PODIUM_KAFKA_SASL_PASSWORD"
        )
    if not sasl and (extra := [name for name, value in given.items() if value is not None]):
        raise SettingsError(
            f"{extra[0]} is set but PODIUM_KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL "
            "(SASL_PLAINTEXT or SASL_SSL)"
        )
    if settings.kafka_ssl_cafile is not None and not protocol.endswith("SSL"):
        raise SettingsError(
            f"PODIUM_KAFKA_SSL_CAFILE is set but PODIUM_KAFKA_SECURITY_PROTOCOL={protocol} "
            "uses no TLS (SSL or SASL_SSL)"
        )
