"""How long a client's connection lives and how a client may keep it alive.

A channel keeps its connection for as long as both ends live, so after a rollout the clients
stay on the instances they first reached and new ones get none of their calls. Past
`PODIUM_MAX_CONNECTION_AGE_SECONDS` the server sends GOAWAY: the client's next calls go over
a new connection, which its load balancing may send to another instance; calls in flight get
`PODIUM_SHUTDOWN_GRACE_SECONDS` to finish. gRPC spreads the ages by +/-10% itself, so clients
that connected together do not all reconnect at once.

Keepalive, both ways: the server pings a connection idle for a minute and drops it when the
ping goes unanswered (a client gone without a word); a client may ping every 10 s at most,
calls or not (gRPC's default refuses pings more often than every 5 minutes, and a client
pinging more often would get its connection closed as "too many pings").
"""

from __future__ import annotations

KEEPALIVE_TIME_MS = 60_000
KEEPALIVE_TIMEOUT_MS = 20_000
CLIENT_PING_MIN_INTERVAL_MS = 10_000
MAX_PING_STRIKES = 2


def connection_options(max_age_seconds: float, grace_seconds: float) -> list[tuple[str, int]]:
    """The server options; `max_age_seconds` 0 leaves connections to live as long as they
    are used."""
    age = (
        []
        if max_age_seconds == 0
        else [
            ("grpc.max_connection_age_ms", _ms(max_age_seconds)),
            ("grpc.max_connection_age_grace_ms", _ms(grace_seconds)),
        ]
    )
    return [
        *age,
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", CLIENT_PING_MIN_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", MAX_PING_STRIKES),
    ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
