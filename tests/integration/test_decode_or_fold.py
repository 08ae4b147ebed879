"""Whatever `decode` accepts, the folds and the read use cases accept.

Envelopes are generated from the protobuf descriptors of the four topics, so a field added to
a `.proto` file is generated too: every field gets a plausible value (a small pool of ids, so
that events of one batch and of successive batches meet: a trip and its driver, a registration
and its challenge) or, now and then, a wild one (empty, NUL, very long and non-ASCII strings,
integers at their extremes, infinities and NaN, Timestamps and Durations at and beyond what
protobuf allows, unknown enum numbers, a thousand and one repeated values). Records go as
binary or proto3 JSON, sometimes as garbage, with random headers and record timestamps; JSON
sometimes as a newer producer writes it (members Podium does not know, at any depth) or
without its content-type header; either now and then in the Schema Registry wire format.

For each batch: `decode` returns an Event or a Rejected and never raises; `apply_batch` folds
the events and stores the rejections without raising, on SQLite and on PostgreSQL (one schema
per test, whose state accumulates across examples); the read use cases then answer for the ids
folded, raising only the product's errors (`PodiumError`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2
from sqlalchemy import Engine

import consumers.decode as decode_module
from consumers.decode import NOT_JSON, UNFORESEEN, decode, decode_noting_unknown_fields
from service.adapters.read_model import read_model
from service.adapters.unit_of_work import SqlUnitOfWork
from service.app import queries
from service.app.ingest import Batch, apply_batch
from service.app.ports import ReadModel
from service.app.records import DeadLetter, Received, Record, Rejected, arrival_at
from service.domain import bounds
from service.domain import events as ev
from service.domain.errors import PodiumError
from service.domain.rules import Rules
from service.domain.standings import Thresholds
from service.grpc import convert
from tests import profiles

T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
"""The `now` of every fold and query; plausible times fall around it."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0_SECONDS = int((T0 - EPOCH).total_seconds())
DAY = 86_400
RULES = Rules(Thresholds(min_trips=1, min_km=Decimal(1)), late_event_grace=timedelta(hours=24))
"""Low thresholds, so that the few trips of a run rank drivers."""

ENVELOPES: dict[str, type[Message]] = {
    "catalog": catalog_pb2.CatalogEvent,
    "trips": trips_pb2.TripEvent,
    "enrollments": enrollments_pb2.EnrollmentEvent,
    "tasks": tasks_pb2.TaskEvent,
}
EXAMPLES = {"sqlite": 1100, "postgresql": 650}
"""The batches a soak folds into each database (`make test` folds its profile's share of them:
tests/profiles.py); PostgreSQL's are slower, so it is given fewer."""

# --- field values --------------------------------------------------------------------------

PLAIN_IDS = ["a", "b", "c", "acme"]
"""Few, so that events meet (with two-letter ids from "ab", ten ids in all)."""
TIME_MAX_SECONDS = int((bounds.TIME_MAX - EPOCH).total_seconds())
DURATION_MAX_SECONDS = int(bounds.DURATION_MAX.total_seconds())
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

_ASTRAL = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, exclude_categories=["Cs"])
_LONGEST = [  # as long as some bound allows (tenant ids, ids, emails, free text)
    "x" * bounds.TENANT_ID_MAX_LENGTH,
    "x" * bounds.ID_MAX_LENGTH,
    "é" * bounds.ID_MAX_LENGTH,
    "\U0001f600" * (bounds.ID_MAX_BYTES // 4),
    "İ" * (bounds.EMAIL_MAX_LENGTH // 2),  # twice as long once lower-cased
    "x" * bounds.EMAIL_MAX_LENGTH,
    "x" * bounds.REASON_MAX_LENGTH,
    "x" * bounds.TEXT_MAX_LENGTH,
]
_TOO_LONG = [s + s[-1] for s in _LONGEST]
WILD_STRINGS = st.one_of(
    st.sampled_from(_LONGEST),
    st.sampled_from(_LONGEST),
    st.sampled_from(_TOO_LONG),
    st.sampled_from(["", "\x00", "a\x00b", " ", "\u00e9\u00e8"]),
    st.text(max_size=8),  # anything, NUL and non-ASCII included
    st.text(_ASTRAL, min_size=140, max_size=201),  # long, and hardly compressible
)
BOOLEANS = st.booleans()
PLAIN_STRINGS = st.sampled_from(PLAIN_IDS) | st.text("ab", min_size=1, max_size=2)
PLAIN_DOUBLES = st.sampled_from([0.0, 10.0]) | st.floats(0, 10)


@functools.cache
def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    """Strategies are built once: building one per draw costs more than the draw."""
    return st.integers(low, high)


@functools.cache
def _pick(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


WILD_INT32 = st.one_of(st.sampled_from([INT32[0], -1, INT32[1]]), st.integers(*INT32))
WILD_INT64 = st.one_of(
    st.sampled_from([INT64[0], -1, INT64[1], bounds.TIME_SPENT_MAX_MS + 1]),
    st.integers(*INT64),
)
WILD_DOUBLES = st.one_of(
    st.sampled_from([math.inf, -math.inf, math.nan, 1e300, -1e300, 1.7976931348623157e308]),
    st.sampled_from([-0.0, 5e-324, -1.0, 10.000001, 100.5, 10_000.5, 1e6 + 1, 1e12]),
    st.floats(),
)
# Wild times and durations are mostly ones protobuf allows, which get past decoding to the
# bounds and the rules; the rest test decoding itself.
_YEAR_9999 = 253_402_300_799  # its last second, the last one protobuf (and datetime) allows
WILD_SECONDS = st.one_of(
    st.sampled_from([_YEAR_9999, _YEAR_9999 - 10 * DAY, TIME_MAX_SECONDS, -62_135_596_800]),
    st.sampled_from([-1, 0, TIME_MAX_SECONDS - 1]),
    st.sampled_from([_YEAR_9999 + 1, -62_135_596_801, 2**40, INT64[0], INT64[1]]),
    st.integers(*INT64),
)
WILD_NANOS = st.sampled_from([0, 0, 999_999_999, 10**9, -1, INT32[0], INT32[1]])
WILD_DURATION_SECONDS = st.one_of(
    st.sampled_from([DURATION_MAX_SECONDS + 1, 315_576_000_000, -1, -315_576_000_000]),
    st.sampled_from([0, DURATION_MAX_SECONDS, 200 * 365 * DAY]),
    st.sampled_from([315_576_000_001, 2**62, INT64[0], INT64[1]]),
)
WILD_DURATION_NANOS = st.sampled_from([0, 0, 1, -1, 999_999_999, -999_999_999, 10**9])


@dataclass
class Draws:
    """Draws one envelope's field values: plausible, but wild for the fields it is told to."""

    draw: st.DrawFn
    budget: int = 0
    """Faults to place: fields that get a wild value. One or two faults in an otherwise sound
    envelope reach the folds, where a broken field among other broken ones would be rejected
    for those. A third of the time a fault falls on the envelope's own fields (ids, time,
    oneof), else on any field of its payload, nested ones included."""
    faults: set[str] = field(default_factory=set)
    """Full names of the fields (and oneofs) with a fault."""
    chaos: int = 0
    """Percent of the other fields that get a wild value as well."""
    clock: int = T0_SECONDS
    """Plausible times follow each other in field order (occurred_at, then started_at, then
    ended_at, ...), so that most windows and trips are the right way round."""

    def wild(self, full_name: str) -> bool:
        if full_name in self.faults:
            return True
        return self.chaos > 0 and self.draw(_ints(1, 100)) <= self.chaos

    def message(self, descriptor: Descriptor, message: Message, *, depth: int = 0) -> Message:
        if depth == 0 and self.budget and self.draw(_ints(0, 2)) == 0:
            self.budget -= 1
            self.faults.add(self.draw(_pick(*_own_fields(descriptor))))
        elif depth == 1 and self.budget:  # the payload takes the faults left
            fields = _all_fields(descriptor)
            count = min(self.budget, len(fields))
            self.faults.update(self.draw(st.lists(_pick(*fields), min_size=count, max_size=count)))
            self.budget = 0
        for oneof in descriptor.oneofs:
            if _is_synthetic(oneof.fields, oneof.name):
                continue
            # A real oneof: one member; or, wild, none (as a newer producer's member looks).
            if not self.wild(oneof.full_name):
                names = [f.name for f in oneof.fields]
                chosen = self.draw(_pick(*names))
                member = next(f for f in oneof.fields if f.name == chosen)
                self.put(member, message, depth)
        for fd in descriptor.fields:
            if _is_synthetic_member(fd):  # a real oneof's members are drawn above
                self.put(fd, message, depth)
        return message

    def put(self, fd: FieldDescriptor, message: Message, depth: int = 0) -> None:
        wild = self.wild(fd.full_name)
        if fd.has_presence and not fd.is_repeated:
            # Times and the oneof's member are required: leaving them out is a wild value's
            # business; optional fields are left out half the time.
            required = _is_time(fd) or not _is_synthetic_member(fd)
            left_out = self.draw(_ints(0, 3)) == 0 if wild else self.draw(BOOLEANS)
            if (wild or not required) and left_out:
                return
        if fd.is_repeated:
            self.repeated(fd, message, wild)
        elif _is_well_known(fd):
            self.well_known(fd, getattr(message, fd.name), wild)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            self.message(_message_type(fd), getattr(message, fd.name), depth=depth + 1)
        else:
            setattr(message, fd.name, self.scalar(fd, wild))

    def repeated(self, fd: FieldDescriptor, message: Message, wild: bool) -> None:
        container: Any = getattr(message, fd.name)
        if wild:  # as many as the bounds allow, or one more
            count = self.draw(_pick(bounds.MAX_GROUPS, bounds.MAX_GROUPS + 1))
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                template = self.message(_message_type(fd), container.add(), depth=9)
                del container[:]
                container.extend(_numbered(template, count))
            else:
                container.extend(f"g{n}" for n in range(count))
            return
        for _ in range(self.draw(_ints(0, 3))):
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                self.message(_message_type(fd), container.add(), depth=9)
            else:
                container.append(self.scalar(fd, wild=False))

    def scalar(self, fd: FieldDescriptor, wild: bool) -> Any:
        draw, kind = self.draw, fd.type
        if kind == FieldDescriptor.TYPE_STRING:
            if wild:
                return draw(WILD_STRINGS)
            return draw(PLAIN_STRINGS)
        if kind == FieldDescriptor.TYPE_BOOL:
            return draw(BOOLEANS)
        if kind == FieldDescriptor.TYPE_ENUM:
            assert fd.enum_type is not None
            known = [v.number for v in fd.enum_type.values if v.number]
            return draw(_pick(0, 99, -1, INT32[1]) if wild else _pick(*known))
        if kind == FieldDescriptor.TYPE_INT32:
            return draw(WILD_INT32 if wild else _ints(0, 12))
        if kind == FieldDescriptor.TYPE_INT64:
            return draw(WILD_INT64 if wild else _ints(0, 10**7))
        if kind == FieldDescriptor.TYPE_DOUBLE:
            return draw(WILD_DOUBLES if wild else PLAIN_DOUBLES)
        raise AssertionError(f"no strategy for {fd.full_name} (type {kind}): add one")

    def well_known(self, fd: FieldDescriptor, message: Any, wild: bool) -> None:
        """A Timestamp or a Duration: wild in its seconds, its nanos, or both."""
        draw = self.draw
        time = _is_time(fd)
        if time:  # from ten weeks before T0, each time a little after the one before
            self.clock += draw(_ints(0, 24 * 20)) * 3_600
            message.seconds = self.clock + draw(_pick(0, 0, 1, -1))
            message.nanos = draw(_pick(0, 0, 999_999_999))
        else:
            message.seconds = draw(_ints(0, 60)) * DAY
        if not wild:
            return
        part = draw(_pick("seconds", "seconds", "nanos", "both"))
        if part != "nanos":
            message.seconds = draw(WILD_SECONDS if time else WILD_DURATION_SECONDS)
        if part != "seconds":
            message.nanos = draw(WILD_NANOS if time else WILD_DURATION_NANOS)


def _own_fields(descriptor: Descriptor) -> list[str]:
    """A message's fields and real oneofs (nested messages' fields are their own; a oneof's
    members are the oneof's business)."""
    oneofs = [o for o in descriptor.oneofs if not _is_synthetic(o.fields, o.name)]
    fields = [fd.full_name for fd in descriptor.fields if _is_synthetic_member(fd)]
    return [o.full_name for o in oneofs] + fields


def _all_fields(descriptor: Descriptor) -> list[str]:
    """A message's fields and oneofs, and its nested messages' (not Timestamp's, Duration's)."""
    names = _own_fields(descriptor)
    for fd in descriptor.fields:
        if fd.type == FieldDescriptor.TYPE_MESSAGE and not _is_well_known(fd):
            names += _all_fields(_message_type(fd))
    return names


def _is_synthetic(fields: Iterable[FieldDescriptor], name: str) -> bool:
    """proto3 `optional` fields sit in a synthetic oneof of their own, named after them."""
    members = list(fields)
    return len(members) == 1 and name == f"_{members[0].name}"


def _is_synthetic_member(fd: FieldDescriptor) -> bool:
    """A proto3 `optional` field or a plain message field (not a real oneof's member)."""
    oneof = fd.containing_oneof
    return oneof is None or _is_synthetic(oneof.fields, oneof.name)


def _message_type(fd: FieldDescriptor) -> Descriptor:
    assert fd.message_type is not None
    return fd.message_type


def _is_time(fd: FieldDescriptor) -> bool:
    return (
        fd.type == FieldDescriptor.TYPE_MESSAGE
        and _message_type(fd).full_name == "google.protobuf.Timestamp"
    )


def _is_well_known(fd: FieldDescriptor) -> bool:
    return fd.type == FieldDescriptor.TYPE_MESSAGE and _message_type(fd).full_name in (
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    )


def _numbered(template: Message, count: int) -> list[Message]:
    """`count` copies of a message, its first string field numbered (distinct step ids)."""
    first = next(f for f in template.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING)
    copies = []
    for n in range(count):
        copy = type(template)()
        copy.CopyFrom(template)
        setattr(copy, first.name, f"s{n}")
        copies.append(copy)
    return copies


DESCRIPTORS = {family: cast(Descriptor, e.DESCRIPTOR) for family, e in ENVELOPES.items()}


# --- records -------------------------------------------------------------------------------

JUNK_VALUES = st.one_of(
    st.binary(max_size=24),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'{"eventId": "\\ud800"}',
            b'{"bogus\\ud800": 1}',
            b'{"bogus\\u0000": 1}',
            b'{"eventId": "e", "tenantId": "acme", "occurredAt": "9999-12-31T23:59:59Z"}',
            b'{"occurredAt": "0001-01-01T00:00:00Z", "tripDeleted": {}}',
            b"[" * 5_000 + b"]" * 5_000,
            b"\xff\xfe",
        ]
    ),
)
HEADER_NAMES = st.sampled_from(["content-type", "Content-Type", "x-trace", ""])
HEADER_VALUES = st.sampled_from(
    [b"application/json", b"application/json; charset=utf-8", b"text/plain", None, b"", b"\xff"]
)
_MS_PER_DAY = DAY * 1_000
TIME_MAX_MS = TIME_MAX_SECONDS * 1_000
WILD_RECORD_MS = st.one_of(
    st.sampled_from([-1, 0, TIME_MAX_MS - 1, TIME_MAX_MS, (_YEAR_9999 + 1) * 1_000]),
    st.sampled_from([INT64[0], INT64[1], _YEAR_9999 * 1_000 + 999]),
    st.integers(*INT64),
)
PLAIN_RECORD_MS = st.integers(-70 * _MS_PER_DAY, 70 * _MS_PER_DAY).map(
    lambda ms: T0_SECONDS * 1_000 + ms
)
HEADERS: st.SearchStrategy[list[tuple[str, bytes | None]]] = st.just([]) | st.lists(
    st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=2
)
_offsets = itertools.count()


UNKNOWN_KEYS = ["vehicleId", "vehicle_id", "schemaVersion", "hint", "x-trace"]
"""Keys that name no field of any envelope (a newer producer's fields)."""
UNKNOWN_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(UNKNOWN_KEYS), inner, max_size=2)
    ),
    max_leaves=4,
)


def _objects(document: Any) -> list[dict[str, Any]]:
    """Every JSON object of a document (the envelope, its event, nested messages, steps)."""
    found = []
    values = [document]
    while values:
        value = values.pop()
        if isinstance(value, dict):
            found.append(value)
            values += value.values()
        elif isinstance(value, list):
            values += value
    return found


@st.composite
def newer_json(draw: st.DrawFn, envelope: Message) -> bytes:
    """The envelope's proto3 JSON (the fields' JSON names or their .proto names) with one to
    three members Podium does not know, in any of its objects."""
    names = draw(BOOLEANS)
    document = json.loads(json_format.MessageToJson(envelope, preserving_proto_field_name=names))
    objects = _objects(document)
    for _ in range(draw(_ints(1, 3))):
        target = objects[draw(_ints(0, len(objects) - 1))]
        target[draw(_pick(*UNKNOWN_KEYS))] = draw(UNKNOWN_VALUES)
    return json.dumps(document).encode()


SCHEMA_ID = (42).to_bytes(4, "big")


@dataclass(frozen=True)
class Sent:
    family: str
    record: Record


@st.composite
def sent_records(draw: st.DrawFn) -> Sent:
    family = draw(_pick(*sorted(ENVELOPES)))
    start = T0_SECONDS + draw(_ints(-24 * 70, 24 * 40)) * 3_600
    mode = draw(_pick("sound", *["one fault"] * 3, "two faults", "chaos"))
    budget = {"one fault": 1, "two faults": 2}.get(mode, 0)
    draws = Draws(draw, budget, chaos=15 if mode == "chaos" else 0, clock=start)
    envelope = draws.message(DESCRIPTORS[family], ENVELOPES[family]())
    headers: list[tuple[str, bytes | None]] = draw(HEADERS)
    form = draw(_pick(*["binary"] * 4, *["json"] * 3, "newer json", "junk", "unknown field"))
    value = envelope.SerializeToString()
    framing = b"\x00" + SCHEMA_ID if draw(_ints(0, 5)) == 0 else b""
    if form in ("json", "newer json"):
        try:
            as_json = json_format.MessageToJson(envelope).encode()
            value = draw(newer_json(envelope)) if form == "newer json" else as_json
            if draw(_ints(0, 3)):  # else a JSON object without the header
                headers.append(("content-type", b"application/json"))
        except json_format.SerializeToJsonError:  # a Timestamp JSON cannot render: binary
            pass
        value = framing + value
    elif form == "binary" and framing:
        value = framing + b"\x00" + value  # the message-index list [0], as one byte
    elif form == "junk":
        value = draw(JUNK_VALUES)
        if draw(BOOLEANS):
            headers.append(("content-type", b"application/json"))
    elif form == "unknown field":  # field 101, an empty message: a newer producer's member
        value += bytes([0xAA, 0x06, 0x00])
    if draw(_ints(0, 19)) == 0:  # read as another topic's envelope, or an unknown one
        family = draw(_pick(*ENVELOPES, "unknown"))
    wild_time = draw(_ints(0, 19)) == 0
    timestamp_ms = draw(WILD_RECORD_MS if wild_time else PLAIN_RECORD_MS)
    record = Record(
        f"podium.{family}", 0, next(_offsets), timestamp_ms, None, value, tuple(headers)
    )
    return Sent(family, record)


# --- what was folded, and the questions to ask about it ------------------------------------


@dataclass
class Seen:
    """Ids of the folded events, per tenant."""

    groups: dict[str, set[str]] = field(default_factory=dict)
    challenges: dict[str, set[str]] = field(default_factory=dict)
    tasks: dict[str, set[str]] = field(default_factory=dict)
    sessions: dict[str, set[str]] = field(default_factory=dict)
    learners: dict[str, set[str]] = field(default_factory=dict)

    def add(self, event: ev.Event) -> None:
        tenant, p = event.meta.tenant_id, event.payload
        self.groups.setdefault(tenant, set())
        if isinstance(p, ev.UserUpserted | ev.ChallengePublished):
            self.groups[tenant].update(p.groups)
        if isinstance(p, ev.ChallengePublished | ev.ChallengeRegistered):
            self.challenges.setdefault(tenant, set()).add(p.challenge_id)
        if isinstance(p, ev.TaskCreated | ev.TaskStarted | ev.TaskProgressed):
            self.tasks.setdefault(tenant, set()).add(p.task_id)
        if isinstance(p, ev.TaskCompleted | ev.TaskFailed):
            self.tasks.setdefault(tenant, set()).add(p.task_id)
        if isinstance(p, ev.PathSessionPublished):
            self.sessions.setdefault(tenant, set()).add(p.session_id)
        if isinstance(p, ev.PathEnrolled | ev.PathUnenrolled | ev.StepAttempted | ev.StepCorrected):
            self.sessions.setdefault(tenant, set()).add(p.session_id)
            self.learners.setdefault(tenant, set()).add(p.user_id)


def _some(values: Iterable[str]) -> list[str]:
    """A few of many (a user may have a thousand groups): the first three and the last."""
    ordered = sorted(values)
    return ordered[:3] + ordered[-1:] if len(ordered) > 4 else ordered


def _answers(question: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(PodiumError):  # the product's errors (not found, ...) are answers
        question(*args)


def driver_ranking(
    read: ReadModel, tenant: str, kind_number: int, group: str, now: datetime, rules: Rules
) -> None:
    """Both months of a driver ranking as boards, and each of a few drivers' places."""
    kind = convert.ranking_type(kind_number)
    for month in queries.ranking_months(now):
        board = queries.month_board(read, tenant, kind, group, month, rules, now)
        for user in _some(board.board.where):
            queries.driver_rank(board, user, 3, rules)


def ask_everything(engine: Engine, seen: Seen) -> None:
    with read_model(engine) as read:
        for tenant, groups in sorted(seen.groups.items()):
            for kind in (0, 5):  # not ranking types
                _answers(driver_ranking, read, tenant, kind, "", T0, RULES)
            for group in ["", *_some(groups)]:
                for kind in range(1, 5):
                    _answers(driver_ranking, read, tenant, kind, group, T0, RULES)
            for challenge in _some(seen.challenges.get(tenant, ())):
                for group in ["", *_some(groups)]:
                    _answers(queries.challenge_ranking, read, tenant, challenge, group, T0, RULES)
                    _answers(queries.challenge_progress, read, tenant, challenge, group, T0, RULES)
            for task in _some(seen.tasks.get(tenant, ())):
                _answers(queries.get_task, read, tenant, task)
            for session in _some(seen.sessions.get(tenant, ())):
                for user in _some(seen.learners.get(tenant, ())):
                    _answers(queries.path_session_stats, read, tenant, session, user, T0)


# --- the property --------------------------------------------------------------------------


# the property is inside (its count depends on the database): marked for `make soak` to run it
@pytest.mark.hypothesis
def test_whatever_decodes_folds_and_answers(engine: Engine) -> None:
    @settings(
        max_examples=profiles.examples(EXAMPLES[engine.dialect.name]),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(sent_records(), min_size=1, max_size=10))
    def decoded_folded_and_answered(batch: list[Sent]) -> None:
        received: list[Received] = []
        dead: list[DeadLetter] = []
        seen = Seen()
        for sent in batch:
            r = sent.record
            outcome = decode(sent.family, r.value, r.headers, r.timestamp_ms)
            if isinstance(outcome, Rejected):
                # The catch-all is the last resort for what nobody foresaw: every cause known
                # has its own reason, and this test is how a new one becomes known.
                assert not outcome.reason.startswith(UNFORESEEN), outcome.reason
                dead.append(DeadLetter(r, outcome))
            else:
                assert isinstance(outcome, ev.Event)
                received.append(Received(outcome, r))
                seen.add(outcome)
        apply_batch(
            lambda: SqlUnitOfWork(engine),
            Batch(received=received, dead=dead),
            rules=RULES,
            consumer_group="test",
            now=T0,
        )
        ask_everything(engine, seen)

    decoded_folded_and_answered()


# --- one envelope in every form ------------------------------------------------------------

CRAFTED_EVENT_IDS = [
    "{" + "x" * 122,  # 123 bytes: the byte after the event_id tag (a newline) is `{`
    '{"tripId": 1}' + " " * 110,
    " " * 32,  # 32 bytes: a space follows the newline
    "\t" * 9,
    "{}" + "\n" * 8,
]
"""Event ids whose length byte, or first bytes, look like JSON after the event_id tag (0x0a,
a newline): what a binary envelope starting like a JSON object looks like."""


@st.composite
def binary_envelopes(draw: st.DrawFn) -> tuple[str, Message]:
    family = draw(_pick(*sorted(ENVELOPES)))
    mode = draw(_pick("sound", "one fault", "two faults", "chaos"))
    budget = {"one fault": 1, "two faults": 2}.get(mode, 0)
    draws = Draws(draw, budget, chaos=15 if mode == "chaos" else 0)
    envelope: Any = draws.message(DESCRIPTORS[family], ENVELOPES[family]())
    if draw(_ints(0, 3)) == 0:
        envelope.event_id = draw(_pick(*CRAFTED_EVENT_IDS))
    return family, envelope


@settings(
    max_examples=profiles.examples(1500),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(sent=binary_envelopes(), unknown=BOOLEANS, timestamp_ms=PLAIN_RECORD_MS)
def test_every_generated_binary_envelope_decodes_as_before(
    sent: tuple[str, Message], unknown: bool, timestamp_ms: int
) -> None:
    """Before JSON was read without its header, a value without it was binary, always."""
    family, envelope = sent
    value = envelope.SerializeToString() + (bytes([0xAA, 0x06, 0x00]) if unknown else b"")
    as_binary = decode_module._from_binary(
        family, value, None, NOT_JSON, arrival_at(timestamp_ms), timestamp_ms
    )
    for headers in ([], [("content-type", b"application/x-protobuf")]):
        assert decode_noting_unknown_fields(family, value, headers, timestamp_ms) == as_binary


@settings(
    max_examples=profiles.examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(sent=binary_envelopes(), data=st.data())
def test_a_newer_producers_json_decodes_as_the_json_podium_knows(
    sent: tuple[str, Message], data: st.DataObject
) -> None:
    family, envelope = sent
    try:
        known = json_format.MessageToJson(envelope).encode()
    except json_format.SerializeToJsonError:  # a Timestamp JSON cannot render
        return
    newer = data.draw(newer_json(envelope))
    outcome, unknown = decode_noting_unknown_fields(family, newer, [], T0_SECONDS * 1_000)
    expected = decode(family, known, [("content-type", b"application/json")], T0_SECONDS * 1_000)
    if isinstance(expected, ev.Event):
        assert outcome == expected
        assert 1 <= len(unknown) <= 3  # a member added twice to an object is one
    else:
        assert isinstance(outcome, Rejected)
