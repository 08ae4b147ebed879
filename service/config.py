"""The one settings object, built from an injected environment mapping (every variable: the
README, "Configuration"; the rule settings: docs/rules.md#settings)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from service.domain.bounds import CHALLENGE_MIN_DISTANCE_MAX_KM, DURATION_MAX, ID_MAX_LENGTH


class SettingsError(ValueError):
    """A setting is malformed; start-up stops with a message naming it."""


T = TypeVar("T")

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///podium.db"
    kafka_bootstrap_servers: str | None = None
    local_broker_address: str = "127.0.0.1:9092"
    """Where `podium run-local` (`make run`) starts its broker when KAFKA_BOOTSTRAP_SERVERS is
    unset: a fixed address, so producers (`podium demo`, `podium produce`, kcat) find it."""
    grpc_address: str = "127.0.0.1:50051"
    topic_prefix: str = "podium."
    consumer_group: str = "podium"
    metrics_address: str | None = None
    min_trips: int = 5
    min_distance_km: float = 20.0
    late_event_grace: timedelta = timedelta(hours=24)
    topic_partitions: int = 6
    batch_max_records: int = 20_000
    """Under a backlog, bigger batches spread each transaction's fixed cost over more events;
    when the consumer keeps up, a batch holds only what arrived since the last one."""
    max_staleness_seconds: float = 1.0
    """While an answer is rebuilt, callers get the previous one if it is at most this old
    (else they wait for the build): a query reflects an event within about a second."""
    board_cache_mb: int = 256
    """The boards and answers an API instance keeps, least recently used out beyond this."""
    tls_cert_file: str | None = None
    """With `tls_key_file`: the API serves TLS only (PEM, the chain after the certificate)."""
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    """Also require client certificates signed by this CA (mutual TLS)."""
    max_request_bytes: int = 16 * 1024
    """A request message, and its metadata, at most this big (requests hold a few ids)."""
    max_concurrent_calls: int = 256
    """Calls an instance runs at once; beyond, `too_many_calls`."""
    rate_limit_per_key: float = 1000.0
    """Calls a second per key and instance (bursts of one second's worth); 0: no limit."""
    statement_timeout_seconds: float = 10.0
    """A query's statements are cancelled after this, or after what is left of the call's
    deadline when that is less."""
    max_watchers: int = 10_000
    """Streams of `WatchDriverRanking` an instance serves at once; beyond, `too_many_watchers`
    (they are not counted among `max_concurrent_calls`)."""
    log_format: str | None = None
    """`text` or `json`; unset, the command chooses (text for `podium run-local`, which
    `make run` starts, JSON lines otherwise)."""
    log_level: str = "INFO"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    """Never shown: not in the settings' repr, nor in any log line."""
    kafka_ssl_cafile: str | None = None
    """The CA that signed the brokers' certificates (unset: the system's CAs)."""
    topic_replication_factor: int = 1
    """Replicas of each partition of the topics Podium creates (missing ones only)."""
    topic_min_insync_replicas: int = 2
    """`min.insync.replicas` of the topics Podium creates with more than one replica: a
    write the brokers acknowledge is on this many of them."""
    require_durable_topics: bool = False
    """Refuse to start when a topic Podium reads can lose events (finite retention,
    compaction) instead of warning (`consumers.topics`)."""
    otlp_endpoint: str | None = None
    """`OTEL_EXPORTER_OTLP_ENDPOINT`: where OpenTelemetry spans go; unset, tracing is off."""
    drain_seconds: float = 5.0
    """On SIGTERM, health says NOT_SERVING and calls are still answered this long, so load
    balancers take the instance out before it stops taking calls."""
    shutdown_grace_seconds: float = 5.0
    """Calls in flight when the instance stops taking calls (or when a connection reaches its
    maximum age) get this long to finish before they are cancelled."""
    max_connection_age_seconds: float = 300.0
    """A client's connection is closed (GOAWAY, after the grace) once this old, so long-lived
    channels reconnect and spread over new instances; 0: never."""
    health_address: str | None = None
    """A second, plaintext listener serving `grpc.health.v1` only, for probes that cannot
    present a client certificate under mutual TLS."""
    health_tls_ca_file: str | None = None
    """`podium health` over TLS: the CA that signed the API's certificate (unset: the API's
    own certificate file, which holds its chain)."""
    health_tls_cert_file: str | None = None
    """`podium health` under mutual TLS: the client certificate it presents (unset: the
    API's own certificate and key)."""
    health_tls_key_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def read(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return parse(raw)
            except ValueError as error:
                raise SettingsError(f"{name}={raw!r} is not valid: {error}") from None

        defaults = cls()
        return cls(
            database_url=read("DATABASE_URL", _non_empty, defaults.database_url),
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            local_broker_address=read(
                "PODIUM_LOCAL_BROKER_ADDRESS", _listening_address, defaults.local_broker_address
            ),
            grpc_address=read("PODIUM_GRPC_ADDRESS", _host_port, defaults.grpc_address),
            topic_prefix=read("PODIUM_TOPIC_PREFIX", _non_empty, defaults.topic_prefix),
            consumer_group=read("PODIUM_CONSUMER_GROUP", _non_empty, defaults.consumer_group),
            metrics_address=read("PODIUM_METRICS_ADDRESS", _host_port, None),
            min_trips=read("PODIUM_MIN_TRIPS", _non_negative_int, defaults.min_trips),
            min_distance_km=read(
                "PODIUM_MIN_DISTANCE_KM", _non_negative_float, defaults.min_distance_km
            ),
            late_event_grace=read(
                "PODIUM_LATE_EVENT_GRACE_SECONDS", _seconds, defaults.late_event_grace
            ),
            topic_partitions=read(
                "PODIUM_TOPIC_PARTITIONS", _positive_int, defaults.topic_partitions
            ),
            batch_max_records=read(
                "PODIUM_BATCH_MAX_RECORDS", _positive_int, defaults.batch_max_records
            ),
            max_staleness_seconds=read(
                "PODIUM_MAX_STALENESS_SECONDS", _positive_float, defaults.max_staleness_seconds
            ),
            board_cache_mb=read("PODIUM_BOARD_CACHE_MB", _positive_int, defaults.board_cache_mb),
            tls_cert_file=read("PODIUM_TLS_CERT_FILE", _non_empty, None),
            tls_key_file=read("PODIUM_TLS_KEY_FILE", _non_empty, None),
            tls_client_ca_file=read("PODIUM_TLS_CLIENT_CA_FILE", _non_empty, None),
            max_request_bytes=read(
                "PODIUM_MAX_REQUEST_BYTES", _positive_int, defaults.max_request_bytes
            ),
            max_concurrent_calls=read(
                "PODIUM_MAX_CONCURRENT_CALLS", _positive_int, defaults.max_concurrent_calls
            ),
            rate_limit_per_key=read(
                "PODIUM_RATE_LIMIT_PER_KEY", _non_negative_float, defaults.rate_limit_per_key
            ),
            statement_timeout_seconds=read(
                "PODIUM_STATEMENT_TIMEOUT_SECONDS",
                _positive_float,
                defaults.statement_timeout_seconds,
            ),
            max_watchers=read("PODIUM_MAX_WATCHERS", _positive_int, defaults.max_watchers),
            log_format=read("PODIUM_LOG_FORMAT", _one_of(LOG_FORMATS), None),
            log_level=read("PODIUM_LOG_LEVEL", _one_of(LOG_LEVELS), defaults.log_level),
            kafka_security_protocol=read(
                "PODIUM_KAFKA_SECURITY_PROTOCOL",
                _one_of(KAFKA_SECURITY_PROTOCOLS),
                defaults.kafka_security_protocol,
            ),
            kafka_sasl_mechanism=read(
                "PODIUM_KAFKA_SASL_MECHANISM", _one_of(KAFKA_SASL_MECHANISMS), None
            ),
            kafka_sasl_username=read("PODIUM_KAFKA_SASL_USERNAME", _non_empty, None),
            kafka_sasl_password=env.get("PODIUM_KAFKA_SASL_PASSWORD") or None,
            kafka_ssl_cafile=read("PODIUM_KAFKA_SSL_CAFILE", _non_empty, None),
            topic_replication_factor=read(
                "PODIUM_TOPIC_REPLICATION_FACTOR", _positive_int, defaults.topic_replication_factor
            ),
            topic_min_insync_replicas=read(
                "PODIUM_TOPIC_MIN_INSYNC_REPLICAS",
                _positive_int,
                defaults.topic_min_insync_replicas,
            ),
            require_durable_topics=read(
                "PODIUM_REQUIRE_DURABLE_TOPICS", _boolean, defaults.require_durable_topics
            ),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            drain_seconds=read("PODIUM_DRAIN_SECONDS", _bounded_seconds, defaults.drain_seconds),
            shutdown_grace_seconds=read(
                "PODIUM_SHUTDOWN_GRACE_SECONDS", _bounded_seconds, defaults.shutdown_grace_seconds
            ),
            max_connection_age_seconds=read(
                "PODIUM_MAX_CONNECTION_AGE_SECONDS",
                _bounded_seconds,
                defaults.max_connection_age_seconds,
            ),
            health_address=read("PODIUM_HEALTH_ADDRESS", _host_port, None),
            health_tls_ca_file=read("PODIUM_HEALTH_TLS_CA_FILE", _non_empty, None),
            health_tls_cert_file=read("PODIUM_HEALTH_TLS_CERT_FILE", _non_empty, None),
            health_tls_key_file=read("PODIUM_HEALTH_TLS_KEY_FILE", _non_empty, None),
        )._checked()

    def _checked(self) -> Settings:
        """Settings that only make sense together."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            missing = "PODIUM_TLS_KEY_FILE" if self.tls_key_file is None else "PODIUM_TLS_CERT_FILE"
            raise SettingsError(
                f"{missing} is not set: PODIUM_TLS_CERT_FILE and PODIUM_TLS_KEY_FILE go together"
            )
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise SettingsError(
                "PODIUM_TLS_CLIENT_CA_FILE needs PODIUM_TLS_CERT_FILE and PODIUM_TLS_KEY_FILE"
            )
        if (self.health_tls_cert_file is None) != (self.health_tls_key_file is None):
            raise SettingsError(
                "PODIUM_HEALTH_TLS_CERT_FILE and PODIUM_HEALTH_TLS_KEY_FILE go together"
            )
        if self.min_distance_km > CHALLENGE_MIN_DISTANCE_MAX_KM:
            raise SettingsError(
                f"PODIUM_MIN_DISTANCE_KM must be at most {CHALLENGE_MIN_DISTANCE_MAX_KM:,.0f}"
            )
        replicas = self.topic_replication_factor
        if replicas > 1 and self.topic_min_insync_replicas > replicas:
            raise SettingsError(
                f"PODIUM_TOPIC_MIN_INSYNC_REPLICAS={self.topic_min_insync_replicas} is more than "
                f"PODIUM_TOPIC_REPLICATION_FACTOR={replicas}: no write could ever be acknowledged"
            )
        if len(self.topic("enrollments")) > ID_MAX_LENGTH:
            raise SettingsError(
                f"PODIUM_TOPIC_PREFIX is too long: topic names must fit {ID_MAX_LENGTH} characters"
            )
        self._check_kafka_security()
        return self

    def _check_kafka_security(self) -> None:
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        given = {
            "PODIUM_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "PODIUM_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "PODIUM_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
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
        if self.kafka_ssl_cafile is not None and not protocol.endswith("SSL"):
            raise SettingsError(
                f"PODIUM_KAFKA_SSL_CAFILE is set but PODIUM_KAFKA_SECURITY_PROTOCOL={protocol} "
                "uses no TLS (SSL or SASL_SSL)"
            )

    def to_env(self) -> dict[str, str]:
        """The environment variables that give these settings (for starting `podium serve`)."""
        optional = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "PODIUM_METRICS_ADDRESS": self.metrics_address,
            "PODIUM_TLS_CERT_FILE": self.tls_cert_file,
            "PODIUM_TLS_KEY_FILE": self.tls_key_file,
            "PODIUM_TLS_CLIENT_CA_FILE": self.tls_client_ca_file,
            "PODIUM_LOG_FORMAT": self.log_format,
            "PODIUM_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "PODIUM_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "PODIUM_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
            "PODIUM_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "PODIUM_HEALTH_ADDRESS": self.health_address,
            "PODIUM_HEALTH_TLS_CA_FILE": self.health_tls_ca_file,
            "PODIUM_HEALTH_TLS_CERT_FILE": self.health_tls_cert_file,
            "PODIUM_HEALTH_TLS_KEY_FILE": self.health_tls_key_file,
        }
        return {
            "DATABASE_URL": self.database_url,
            "PODIUM_LOCAL_BROKER_ADDRESS": self.local_broker_address,
            "PODIUM_GRPC_ADDRESS": self.grpc_address,
            "PODIUM_TOPIC_PREFIX": self.topic_prefix,
            "PODIUM_CONSUMER_GROUP": self.consumer_group,
            "PODIUM_MIN_TRIPS": str(self.min_trips),
            "PODIUM_MIN_DISTANCE_KM": repr(self.min_distance_km),
            "PODIUM_LATE_EVENT_GRACE_SECONDS": repr(self.late_event_grace.total_seconds()),
            "PODIUM_TOPIC_PARTITIONS": str(self.topic_partitions),
            "PODIUM_BATCH_MAX_RECORDS": str(self.batch_max_records),
            "PODIUM_MAX_STALENESS_SECONDS": repr(self.max_staleness_seconds),
            "PODIUM_BOARD_CACHE_MB": str(self.board_cache_mb),
            "PODIUM_MAX_REQUEST_BYTES": str(self.max_request_bytes),
            "PODIUM_MAX_CONCURRENT_CALLS": str(self.max_concurrent_calls),
            "PODIUM_RATE_LIMIT_PER_KEY": repr(self.rate_limit_per_key),
            "PODIUM_STATEMENT_TIMEOUT_SECONDS": repr(self.statement_timeout_seconds),
            "PODIUM_MAX_WATCHERS": str(self.max_watchers),
            "PODIUM_LOG_LEVEL": self.log_level,
            "PODIUM_KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
            "PODIUM_TOPIC_REPLICATION_FACTOR": str(self.topic_replication_factor),
            "PODIUM_DRAIN_SECONDS": repr(self.drain_seconds),
            "PODIUM_SHUTDOWN_GRACE_SECONDS": repr(self.shutdown_grace_seconds),
            "PODIUM_MAX_CONNECTION_AGE_SECONDS": repr(self.max_connection_age_seconds),
            "PODIUM_TOPIC_MIN_INSYNC_REPLICAS": str(self.topic_min_insync_replicas),
            "PODIUM_REQUIRE_DURABLE_TOPICS": "true" if self.require_durable_topics else "false",
            **{name: value for name, value in optional.items() if value is not None},
        }

    @property
    def kafka_servers(self) -> str:
        """Where events go and come from: KAFKA_BOOTSTRAP_SERVERS, else the local broker that
        `make run` starts."""
        return self.kafka_bootstrap_servers or self.local_broker_address

    def topic(self, name: str) -> str:
        """The Kafka topic of a family: `catalog`, `trips`, `enrollments` or `tasks`."""
        return f"{self.topic_prefix}{name}"


def setting_names() -> tuple[str, ...]:
    """Every environment variable the settings are read from, in the order `from_env` reads
    them (the commands' `--help` name theirs from these)."""
    names: list[str] = []

    class Recorder(dict[str, str]):
        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            names.append(key)
            return default

    Settings.from_env(Recorder())
    return tuple(dict.fromkeys(names))


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """Any of `choices`, in any case."""

    def parse(raw: str) -> str:
        value = raw.strip().upper()
        for choice in choices:
            if choice.upper() == value:
                return choice
        raise ValueError(f"expected one of {', '.join(choices)}")

    return parse


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
