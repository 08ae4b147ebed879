"""The `podium` command: serve, keys, dead letters, migrations, and the local quick start.

Its exit codes (`EXIT_CODES`, also in `podium --help`) are one convention for every command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.assignment import TopicsNotCoPartitioned
from consumers.local_broker import AddressTaken, BrokerMissing, LocalBroker
from consumers.topics import TopicsNotDurable, log_ranges
from service.app.records import FAMILIES, Stamp, timestamp_ms_of
from service.clock import SystemClock
from service.config import ROLES, Settings, SettingsError, setting_names
from service.grpc import API_HEALTH, INGEST_HEALTH
from service.logs import configure_logging, describe

if TYPE_CHECKING:
    from consumers.rebalance import Member
    from service.app.offsets import OffsetRow
    from service.app.ports import IgnoredEntry, Letter, LetterFilter, OutboxEntry
    from service.bootstrap import Storage
    from service.domain.auth import ApiKey

log = logging.getLogger("podium")

RUNTIME_FAILURE = 1
USAGE_ERROR = 2
EXIT_CODES = (
    "exit codes: 0 success; 1 runtime failure (the command could not do what it was asked: a "
    "database or a Kafka out of reach, a schema to migrate first, a dead letter still failing, "
    "an instance not SERVING); 2 usage error (an unknown option, a malformed or missing setting)"
)


class CommandFailed(RuntimeError):
    """The command could not do what it was asked (exit code 1, the message on stderr)."""


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)  # a usage error exits 2 here, as argparse does
    try:
        settings = Settings.from_env(os.environ if env is None else env)
        configure_logging(settings.log_format or args.log_format, settings.log_level)
        result: int = args.run(settings, args)
        return result
    except SettingsError as error:
        print(f"podium: {error}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as error:
        if isinstance(error, _refusals()):
            print(f"podium: {error}", file=sys.stderr)
            return RUNTIME_FAILURE
        # Logged rather than left to Python, so the line is JSON like the others and the
        # traceback as safe (`service.logs.safe_traceback`).
        words = list(sys.argv[1:] if argv is None else argv)
        log.critical("podium %s failed", words[0] if words else "", exc_info=True)
        return RUNTIME_FAILURE


def _refusals() -> tuple[type[Exception], ...]:
    """The errors that say a command could not do what it was asked (exit code 1, the
    message alone). Their modules are imported here, not at start: `podium serve --role
    consumers` joins its group before it loads them (`_serve_until_signalled`)."""
    import migrations
    from consumers.publish import KafkaUnreachable
    from service.app.ports import OffsetMoved
    from service.demo.command import DemoFailed

    return (
        CommandFailed,
        ValueError,
        migrations.SchemaBehind,
        migrations.SchemaAhead,
        migrations.SqlNotPrintable,
        OffsetMoved,
        KafkaUnreachable,
        DemoFailed,
        BrokerMissing,
        TopicsNotDurable,
        TopicsNotCoPartitioned,
    )


def _version() -> str:
    try:
        return metadata.version("podium")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


_LOGS = ("PODIUM_LOG_FORMAT", "PODIUM_LOG_LEVEL")
_KAFKA = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "PODIUM_KAFKA_SECURITY_PROTOCOL",
    "PODIUM_KAFKA_SASL_MECHANISM",
    "PODIUM_KAFKA_SASL_USERNAME",
    "PODIUM_KAFKA_SASL_PASSWORD",
    "PODIUM_KAFKA_SSL_CAFILE",
)
_TOPICS = ("PODIUM_TOPIC_PREFIX", "PODIUM_CONSUMER_GROUP")
_RULES = ("PODIUM_MIN_TRIPS", "PODIUM_MIN_DISTANCE_KM", "PODIUM_LATE_EVENT_GRACE_SECONDS")
_HEALTH = (
    "PODIUM_GRPC_ADDRESS",
    "PODIUM_HEALTH_ADDRESS",
    "PODIUM_TLS_CERT_FILE",
    "PODIUM_TLS_KEY_FILE",
    "PODIUM_TLS_CLIENT_CA_FILE",
    "PODIUM_HEALTH_TLS_CA_FILE",
    "PODIUM_HEALTH_TLS_CERT_FILE",
    "PODIUM_HEALTH_TLS_KEY_FILE",
)


def _reads(*names: str) -> str:
    """A command's `--help` epilog: the settings (environment variables) it reads."""
    return f"settings (environment): {', '.join(dict.fromkeys((*names, *_LOGS)))}"


def _command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help_text: str,
    reads: Sequence[str],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=help_text, epilog=_reads(*reads)
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podium",
        description=__doc__.split("\n\n")[0],
        epilog=f"{EXIT_CODES}. Settings: README, Configuration.",
    )
    parser.add_argument("--version", action="version", version=f"podium {_version()}")
    parser.set_defaults(log_format="json")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    every_setting = setting_names()
    serve_cmd = _command(commands, "serve", "run the gRPC API and the consumers", every_setting)
    serve_cmd.add_argument("--role", choices=ROLES, default="all")
    serve_cmd.set_defaults(run=_serve)

    local = _command(
        commands,
        "run-local",
        "serve, starting a local broker if KAFKA_BOOTSTRAP_SERVERS is unset",
        every_setting,
    )
    local.set_defaults(run=_run_local, log_format="text")

    migrate_cmd = _command(commands, "migrate", "apply database migrations", ("DATABASE_URL",))
    migrate_cmd.add_argument(
        "--sql",
        action="store_true",
        help="print the SQL the migration would run on this database, for review; run nothing",
    )
    migrate_cmd.set_defaults(run=_migrate)

    health = _command(
        commands,
        "health",
        "ask a running instance whether it is SERVING, as a probe does: one line, "
        "exit code 0 if SERVING, 1 if not",
        _HEALTH,
    )
    health.add_argument(
        "--service",
        choices=(API_HEALTH, INGEST_HEALTH),
        default="",
        help="one service (default: the instance as a whole)",
    )
    health.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="default: 5")
    health.set_defaults(run=_health)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(required=True)
    create = _command(keys, "create", "create a key and print it (shown once)", ("DATABASE_URL",))
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", required=True, help="ranking,challenges,tasks,paths")
    create.add_argument(
        "--expires-in", type=_duration, help="e.g. 90d, 12h, 30m (default: never expires)"
    )
    create.set_defaults(run=_create_key)
    key_list = _command(keys, "list", "keys with their id, never their secret", ("DATABASE_URL",))
    key_list.add_argument("--tenant")
    key_list.add_argument("--json", action="store_true", help="one JSON object per line")
    key_list.set_defaults(run=_list_keys)
    revoke = _command(
        keys, "revoke", "refuse a key from now on, on every instance", ("DATABASE_URL",)
    )
    revoke.add_argument("key_id", metavar="ID", help="the key's id (from `podium keys list`)")
    revoke.set_defaults(run=_revoke_key)

    dlq = commands.add_parser("dlq", help="the dead-letter store").add_subparsers(required=True)
    for name, run, help_text, reads in (
        ("list", _dlq_list, "list dead letters", ("DATABASE_URL",)),
        (
            "replay",
            _dlq_replay,
            "fold dead letters again; those that pass leave the store",
            ("DATABASE_URL", *_TOPICS, *_RULES),
        ),
    ):
        sub = _command(dlq, name, help_text, reads)
        sub.add_argument("ids", nargs="*", type=int, help="letter ids (default: all that match)")
        sub.add_argument("--topic")
        sub.add_argument("--tenant")
        sub.add_argument("--reason", help="a part of the reason (case-insensitive)")
        sub.add_argument("--limit", type=int)
        sub.add_argument("--json", action="store_true", help="one JSON object per line")
        sub.set_defaults(run=run)
    dlq.choices["replay"].add_argument(
        "--dry-run",
        action="store_true",
        help="say what each letter would do, in a transaction rolled back: nothing changes",
    )
    offsets = commands.add_parser(
        "offsets", help="consumed positions stored with the state"
    ).add_subparsers(required=True)
    show = _command(
        offsets,
        "show",
        "stored offsets beside each log's range",
        ("DATABASE_URL", *_TOPICS, *_KAFKA),
    )
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(run=_offsets_show)
    reset = _command(
        offsets,
        "reset",
        "move stored offsets (a running consumer follows within seconds)",
        ("DATABASE_URL", *_TOPICS, *_KAFKA),
    )
    reset.add_argument("--topic", required=True, help="a topic, or its family (trips, ...)")
    reset.add_argument("--partition", type=int, help="one partition (default: all of the topic)")
    reset.add_argument("--to", required=True, type=_reset_to, help="earliest, latest, or an offset")
    reset.add_argument(
        "--dry-run", action="store_true", help="print where each would move; move nothing"
    )
    reset.add_argument("--json", action="store_true", help="one JSON object per line")
    reset.set_defaults(run=_offsets_reset)

    demo = _command(
        commands,
        "demo",
        "send a small world for one tenant through Kafka, wait until Podium has folded it, "
        "print grpcurl commands that answer with it",
        ("PODIUM_GRPC_ADDRESS", "DATABASE_URL", "PODIUM_LOCAL_BROKER_ADDRESS", *_TOPICS, *_KAFKA),
    )
    demo.add_argument("--tenant", default="demo", help="the tenant (default: demo)")
    demo.add_argument(
        "--within",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for Podium to serve, then to fold (default: 60)",
    )
    demo.set_defaults(run=_demo)

    produce = _command(
        commands,
        "produce",
        "send events written as JSON Lines (an envelope's proto3 JSON a line) to their topics",
        ("PODIUM_LOCAL_BROKER_ADDRESS", "PODIUM_TOPIC_PREFIX", *_KAFKA),
    )
    produce.add_argument("file", nargs="?", help="a JSON Lines file (default: standard input)")
    produce.add_argument(
        "--check", action="store_true", help="check every line as Podium would; send nothing"
    )
    produce.add_argument(
        "--timestamps",
        choices=[stamp.value for stamp in Stamp],
        default=Stamp.CLIENT.value,
        help="each record's Kafka timestamp, its arrival time for Podium: client (default) "
        "leaves it to the producer client, the moment it sends, as live producers do; "
        "occurred-at gives it the envelope's occurredAt, for a backfill of past events",
    )
    produce.set_defaults(run=_produce)

    ignored = commands.add_parser(
        "ignored", help="valid events a rule ignored (a task leaving a terminal state, ...)"
    ).add_subparsers(required=True)
    listing = _command(ignored, "list", "list them, newest first", ("DATABASE_URL",))
    listing.add_argument("--tenant")
    listing.add_argument("--kind", help="e.g. terminal_state, after_freeze, progress_rising")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_ignored_list)

    results = commands.add_parser(
        "results", help="the results of frozen windows published to <prefix>results"
    ).add_subparsers(required=True)
    outbox = _command(
        results, "list", "list the outbox of results, oldest first", ("DATABASE_URL",)
    )
    outbox.add_argument("--tenant")
    outbox.add_argument("--unsent", action="store_true", help="only results not sent yet")
    outbox.add_argument("--limit", type=int, default=100, help="at most this many (0: all)")
    outbox.add_argument(
        "--json", action="store_true", help="one JSON object per line, the result included"
    )
    outbox.set_defaults(run=_results_list)
    return parser


def _results_list(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings) as store:
        entries = store.list_results(args.tenant, args.unsent, args.limit)
    for entry in entries:
        print(json.dumps(_result_json(entry)) if args.json else _result_line(entry))
    return 0


def _result_json(entry: OutboxEntry) -> dict[str, object]:
    from service.result_events import as_json

    return {
        "id": entry.id,
        "eventId": entry.event_id,
        "tenantId": entry.tenant_id,
        "kind": entry.kind,
        "window": entry.window,
        "occurredAt": entry.occurred_at.isoformat(),
        "recordedAt": None if entry.recorded_at is None else entry.recorded_at.isoformat(),
        "sentAt": None if entry.sent_at is None else entry.sent_at.isoformat(),
        "result": as_json(entry.payload),
    }


def _result_line(entry: OutboxEntry) -> str:
    sent = "unsent" if entry.sent_at is None else f"sent {entry.sent_at.isoformat()}"
    return "\t".join(
        (str(entry.id), entry.tenant_id, entry.kind, entry.window, entry.event_id, sent)
    )


def _ignored_list(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings) as store, store.read() as read:
        events = read.ignored_events(args.tenant, args.kind, args.limit)
    for event in events:
        print(json.dumps(_ignored_json(event)) if args.json else _ignored_line(event))
    return 0


def _ignored_json(event: IgnoredEntry) -> dict[str, object]:
    return {
        "id": event.id,
        "topic": event.record.topic,
        "partition": event.record.partition,
        "offset": event.record.offset,
        "tenantId": event.tenant_id,
        "eventId": event.event_id,
        "kind": event.kind,
        "reason": event.reason,
        "ignoredAt": event.ignored_at.isoformat(),
    }


def _ignored_line(event: IgnoredEntry) -> str:
    return "\t".join((str(event.id), event.tenant_id, event.event_id, event.kind, event.reason))


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_serve_until_signalled(settings, args.role))


async def _serve_until_signalled(settings: Settings, role: str) -> int:
    """The first SIGTERM or SIGINT drains then stops; a second one cuts the drain short.

    A process that consumes joins its consumer group first (`consumers.handover.join`),
    then loads the rest (the database's, the API's and the fold's modules, most of its
    start) on a worker thread while the broker holds the join (bench/RESULTS.md, issue
    26)."""
    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled)
    member: Member | None = None
    if role != "api" and settings.kafka_bootstrap_servers:
        from consumers.handover import join

        member = await join(settings)
    try:
        serve = await asyncio.to_thread(_server)
        return await serve(settings, role, stop, hurry, member)
    finally:
        if member is not None:
            await member.leave()  # left already, unless the start failed before the loop ran


def _server() -> Callable[
    [Settings, str, asyncio.Event, asyncio.Event | None, Member | None], Awaitable[int]
]:
    from service.bootstrap import serve

    return serve


def _health(settings: Settings, args: argparse.Namespace) -> int:
    from service.bootstrap import health_target
    from service.grpc.health_check import SERVING, check_health

    address, credentials = health_target(settings)
    status = asyncio.run(check_health(address, credentials, args.service, args.timeout))
    print(f"{args.service or 'podium'} at {address}: {status}")
    return 0 if status == SERVING else RUNTIME_FAILURE


def _run_local(settings: Settings, args: argparse.Namespace) -> int:
    """`make run`: stopped by Ctrl-C at a terminal, with no load balancer to drain for."""
    settings = replace(settings, drain_seconds=0.0)
    if settings.kafka_bootstrap_servers:
        return _serve(settings, argparse.Namespace(role="all"))
    broker = LocalBroker.at(settings.local_broker_address)
    try:
        broker.start()
    except AddressTaken as taken:
        raise CommandFailed(
            f"the local broker's address {taken}. Another `make run` or a Kafka may hold it: "
            "set PODIUM_LOCAL_BROKER_ADDRESS to a free HOST:PORT, or KAFKA_BOOTSTRAP_SERVERS "
            "to use a Kafka that runs already"
        ) from None
    try:
        print(
            f"podium: local broker on {broker.bootstrap_servers} (PODIUM_LOCAL_BROKER_ADDRESS); "
            f"producers reach it there: podium demo, podium produce, "
            f"kcat -b {broker.bootstrap_servers}",
            file=sys.stderr,
        )
        local = replace(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        return _serve(local, argparse.Namespace(role="all"))
    finally:
        broker.stop()


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from service.demo.command import run_demo

    asyncio.run(run_demo(settings, args.tenant, args.within, SystemClock()))
    return 0


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    """Every line is checked with the consumer's own decoder first: the refused ones are
    reported with their number and reason (exit code 1) and not sent; the others are."""
    from consumers.publish import from_json_lines, publish

    try:
        text = sys.stdin.read() if args.file is None else Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {args.file or 'standard input'}: {error}") from None
    lines = text.splitlines()
    now_ms = timestamp_ms_of(SystemClock().now())
    records, refused = from_json_lines(lines, now_ms, Stamp(args.timestamps))
    for number, reason in refused:
        print(f"line {number}: {reason}", file=sys.stderr)
    if records and not args.check:
        asyncio.run(publish(settings, records))
    by_family = Counter(r.family for r in records)
    counts = ", ".join(f"{by_family[f]} {settings.topic(f)}" for f in FAMILIES if by_family[f])
    verb = "valid" if args.check else f"sent to {settings.kafka_servers}"
    print(
        f"podium produce: {len(records)} event(s) {verb}{f' ({counts})' if counts else ''}; "
        f"{len(refused)} line(s) refused",
        file=sys.stderr,
    )
    return 1 if refused else 0


def _database(settings: Settings, *, migrate: bool = False) -> AbstractContextManager[Storage]:
    """The database, closed afterwards. Only `podium migrate` (and `podium serve`) migrate;
    other commands refuse a schema that is behind."""
    from service.bootstrap import storage

    return storage(settings.database_url, migrate=migrate)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    import migrations
    from service.adapters.database import create_database_engine

    if args.sql:
        engine = create_database_engine(settings.database_url)
        try:
            migrations.upgrade_sql(engine, sys.stdout)
        finally:
            engine.dispose()
        return 0
    with _database(settings, migrate=True) as store, store.engine.connect() as connection:
        print(f"podium: the database schema is at {migrations.current(connection)}")
    return 0


def _our_topics(settings: Settings) -> list[str]:
    return [settings.topic(f) for f in FAMILIES]


def _logs(settings: Settings, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    if not settings.kafka_bootstrap_servers:
        return {}
    return asyncio.run(log_ranges(settings, topics))


def _offsets_show(settings: Settings, args: argparse.Namespace) -> int:
    from service.app.offsets import offset_rows

    with _database(settings) as store, store.read() as read:
        stored = read.stored_offsets(settings.consumer_group)
    rows = offset_rows(stored, _logs(settings, _our_topics(settings)))
    if not settings.kafka_bootstrap_servers:
        print("podium: KAFKA_BOOTSTRAP_SERVERS is unset: log ranges unknown", file=sys.stderr)
    for row in rows:
        print(json.dumps(_offset_json(row)) if args.json else _offset_line(row))
    return 0 if all(row.inside_log for row in rows) else 1


def _offset_json(row: OffsetRow) -> dict[str, object]:
    return {
        "topic": row.topic,
        "partition": row.partition,
        "stored": row.stored,
        "logStart": row.log[0] if row.log else None,
        "logEnd": row.log[1] if row.log else None,
        "lag": row.lag,
        "insideLog": row.inside_log,
    }


def _offset_line(row: OffsetRow) -> str:
    def shown(value: int | None) -> str:
        return "-" if value is None else str(value)

    start, end = row.log if row.log else (None, None)
    cells = (row.topic, str(row.partition), shown(row.stored), shown(start), shown(end))
    return "\t".join((*cells, shown(row.lag), row.note)).rstrip()


def _reset_to(raw: str) -> str:
    """`--to`: earliest, latest or an offset (whether the offset is inside the log is known
    only once the log is read)."""
    if raw in ("earliest", "latest") or raw.isdigit():
        return raw
    raise argparse.ArgumentTypeError(f"{raw!r}: expected earliest, latest or an offset")


def _offsets_reset(settings: Settings, args: argparse.Namespace) -> int:
    from service.app.offsets import reset_offsets, reset_target

    if not settings.kafka_bootstrap_servers:
        raise SettingsError("KAFKA_BOOTSTRAP_SERVERS is needed to read the logs' ranges")
    topic = settings.topic(args.topic) if args.topic in FAMILIES else args.topic
    logs = {
        tp: span
        for tp, span in _logs(settings, [topic]).items()
        if args.partition is None or tp[1] == args.partition
    }
    if not logs:
        raise CommandFailed(f"no such partition: {topic} {args.partition or ''}".rstrip())
    targets = {tp: reset_target(args.to, span) for tp, span in sorted(logs.items())}
    with _database(settings) as store:
        before = reset_offsets(
            store.unit_of_work, settings.consumer_group, targets, dry_run=args.dry_run
        )
    for (name, number), to in targets.items():
        was = before[(name, number)]
        if args.json:
            moved = {"topic": name, "partition": number, "from": was, "to": to}
            print(json.dumps({**moved, "dryRun": args.dry_run}))
        else:
            would = "would move " if args.dry_run else ""
            print(f"{name}\t{number}\t{would}{'-' if was is None else was} -> {to}")
    if args.dry_run:
        print("dry run: no offset moved", file=sys.stderr)
    return 0


def _create_key(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings) as store:
        print(store.create_key(args.tenant, args.scopes, SystemClock().now(), args.expires_in))
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def _duration(raw: str) -> timedelta:
    """`90d`, `12h`, `30m`, `45s`, `2w`."""
    number, unit = raw[:-1], raw[-1:].lower()
    if unit not in _UNITS or not number.isdigit() or int(number) <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r}: expected a positive number and s, m, h, d or w")
    return timedelta(seconds=int(number) * _UNITS[unit])


def _list_keys(settings: Settings, args: argparse.Namespace) -> int:
    from service.app.keys import list_keys

    with _database(settings) as store:
        listed = list_keys(store.keys(), args.tenant)
    now = SystemClock().now()
    for key in listed:
        print(json.dumps(_key_json(key, now)) if args.json else _key_line(key, now))
    return 0


def _key_json(key: ApiKey, now: datetime) -> dict[str, object]:
    def moment(at: datetime | None) -> str | None:
        return None if at is None else at.isoformat()

    return {
        "id": key.key_id,
        "tenantId": key.tenant_id,
        "scopes": sorted(key.scopes),
        "createdAt": moment(key.created_at),
        "lastUsedAt": moment(key.last_used_at),
        "expiresAt": moment(key.expires_at),
        "revokedAt": moment(key.revoked_at),
        "usable": key.usable(now),
    }


def _key_line(key: ApiKey, now: datetime) -> str:
    def moment(at: datetime | None) -> str:
        return "-" if at is None else at.isoformat(timespec="seconds").replace("+00:00", "Z")

    state = "usable" if key.usable(now) else "revoked" if key.revoked_at else "expired"
    return "\t".join(
        (
            key.key_id,
            key.tenant_id,
            ",".join(sorted(key.scopes)),
            f"created {moment(key.created_at)}",
            f"last used {moment(key.last_used_at)}",
            f"expires {moment(key.expires_at)}",
            state,
        )
    )


def _revoke_key(settings: Settings, args: argparse.Namespace) -> int:
    from service.app.keys import revoke_key

    with _database(settings) as store:
        revoked = revoke_key(store.keys(), args.key_id, SystemClock().now())
    print(_key_line(revoked, SystemClock().now()))
    return 0


def _filter(args: argparse.Namespace) -> LetterFilter:
    from service.app.ports import LetterFilter

    return LetterFilter(tuple(args.ids), args.topic, args.tenant, args.reason, args.limit)


def _dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    from service.app.dead_letters import list_letters

    with _database(settings) as store, store.read() as read:
        letters = list_letters(read, _filter(args))
    for letter in letters:
        print(json.dumps(_as_json(letter)) if args.json else _as_line(letter))
    if not args.json:
        print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    return 0


def _dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.runs import decode_record
    from service.app.dead_letters import list_letters, replay
    from service.bootstrap import lock_buckets, rules_from

    family_of = {settings.topic(f): f for f in FAMILIES}
    with _database(settings) as store:
        with store.read() as read:
            letters = list_letters(read, _filter(args))
        outcome = replay(
            store.unit_of_work,
            letters,
            lambda record: decode_record(record, family_of),
            describe,
            rules=rules_from(settings),
            consumer_group=settings.consumer_group,
            now=SystemClock().now(),
            buckets=store.lock_buckets(lock_buckets(settings)),
            dry_run=args.dry_run,
        )
    failed = {d.record.id: d.rejection.reason for d in outcome.dead_lettered}
    verdicts = ("would fail", "would apply") if args.dry_run else ("still failing", "applied")
    for letter in letters:
        reason = failed.get(letter.record.id)
        verdict = verdicts[reason is None]
        if args.json:
            answer = {"id": letter.id, "outcome": verdict, "reason": reason}
            print(json.dumps({**answer, "dryRun": args.dry_run}))
        else:
            print(f"{letter.id}\t{verdict}")
    what = "dry run, nothing changed" if args.dry_run else "replayed"
    print(
        f"{what}: {len(letters)} letter(s), {len(letters) - len(failed)} {verdicts[1]}, "
        f"{len(failed)} {verdicts[0]}",
        file=sys.stderr,
    )
    return 0 if not failed else RUNTIME_FAILURE


def _as_json(letter: Letter) -> dict[str, object]:
    r = letter.record
    return {
        "id": letter.id,
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "tenantId": letter.tenant_id,
        "eventId": letter.event_id,
        "reason": letter.reason,
        "attempts": letter.attempts,
        "firstFailedAt": letter.first_failed_at.isoformat(),
        "lastFailedAt": letter.last_failed_at.isoformat(),
        "headers": {k: None if v is None else v.decode("utf-8", "replace") for k, v in r.headers},
        "value": r.value.decode("utf-8", "replace") if _is_text(r.value) else r.value.hex(),
    }


def _is_text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _as_line(letter: Letter) -> str:
    r = letter.record
    return (
        f"{letter.id}\t{r.topic}[{r.partition}]@{r.offset}\t{letter.tenant_id or '-'}\t"
        f"{letter.event_id or '-'}\t{letter.reason}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
