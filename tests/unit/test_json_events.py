"""The JSON fast path (`consumers.json_events`): whatever it recognises decodes exactly as
through protobuf's json_format, and it recognises what our producers send."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from podium.events.v1 import trips_pb2

from bench.harness import trip_message
from consumers import json_events
from consumers.decode import NotJson, decode, decode_noting_unknown_fields, load_json
from consumers.publish import from_envelope
from service.app.records import Rejected
from service.domain import events as ev
from tests import profiles
from tests.builders import deletion_envelope, trip_envelope
from tests.unit.test_event_examples import examples

ARRIVED = datetime(2026, 11, 20, 12, tzinfo=UTC)
ARRIVED_MS = int(ARRIVED.timestamp() * 1000)
JSON = [("content-type", b"application/json")]


def fast_path(value: bytes) -> tuple[ev.Event, list[str]] | None:
    """What the fast path makes of a record's document (None for a value that does not load:
    decode never hands it one)."""
    try:
        document = load_json(value)
    except NotJson:
        return None
    return json_events.event_of("trips", document, ARRIVED)


def assert_same_as_json_format(value: bytes) -> ev.Event | None:
    """The fast path's event (None: left to json_format), once checked against json_format:
    decode() gives the same with and without it, the same unknown fields too, and what it
    recognises json_format reads."""
    fast = fast_path(value)
    canonical = json_events.canonical_trip(value, ARRIVED)
    if canonical is not None:  # read without loading the JSON: as the document is read
        assert fast == (canonical, [])
    with_fast_path = decode_noting_unknown_fields("trips", value, JSON, ARRIVED_MS)
    through_json_format = decode_noting_unknown_fields(
        "trips", value, JSON, ARRIVED_MS, json_fast_path=False
    )
    assert with_fast_path == through_json_format
    outcome, unknown = through_json_format
    if isinstance(outcome, Rejected):
        # what the fast path recognises, json_format reads: only the rules may refuse it
        assert fast is None or outcome.kind != "undecodable"
        assert unknown == ()
    elif fast is not None:
        assert (outcome, unknown) == (fast[0], tuple(sorted(fast[1])))
    return None if fast is None else fast[0]


# --- what producers send is recognised ------------------------------------------------------


def _producer_records() -> list[bytes]:
    end = datetime(2026, 11, 20, 8, 30, 12, 345678, tzinfo=UTC)
    envelopes = [
        trip_envelope("t1", "ann", ended_at=end),
        trip_envelope("t2", "bob", km=0.0, safety=0.0, ended_at=end.replace(microsecond=0)),
        trip_envelope("t3", "cid", km=123.0, ended_at=end.replace(microsecond=120_000)),
        deletion_envelope("t1", "ann"),
    ]
    nanos = trip_envelope("t4", "dee", ended_at=end)
    nanos.trip_completed.ended_at.nanos = 123_456_789
    every_score = trip_envelope("t5", "eve", ended_at=end)
    every_score.trip_completed.scores.eco_driving = 7.25
    every_score.trip_completed.scores.distraction = 10
    every_score.trip_completed.scores.speeding = 3.5
    envelopes += [nanos, every_score]
    records = [from_envelope(e, ARRIVED_MS, as_json=True).value for e in envelopes]
    for n in range(3):  # what the bench's producer sends, in its JSON form
        envelope = trips_pb2.TripEvent.FromString(trip_message(n, 10, end)[1])
        records.append(json_format.MessageToJson(envelope).encode())
    docs = [
        e["line"].encode() for e in examples() if e["event"] in ("trip_completed", "trip_deleted")
    ]
    assert len(docs) == 2
    return records + docs + [json.dumps(json.loads(d)).encode() for d in docs]


@pytest.mark.parametrize("value", _producer_records())
def test_what_producers_send_takes_the_fast_path_and_decodes_as_through_json_format(
    value: bytes,
) -> None:
    fast = assert_same_as_json_format(value)
    assert fast is not None
    assert isinstance(decode("trips", value, JSON, ARRIVED_MS), ev.Event)


def test_a_trip_as_json_format_writes_it_is_read_without_loading_its_json() -> None:
    written = [v for v in _producer_records() if b"tripCompleted" in v and not v.startswith(b'{"')]
    assert len(written) >= 8  # json_format's own output (`podium produce`, the bench)
    for value in written:
        assert json_events.canonical_trip(value, ARRIVED) is not None, value
        compact = json.dumps(json.loads(value), separators=(",", ":")).encode()
        assert json_events.canonical_trip(compact, ARRIVED) is not None, compact


def test_decode_reads_what_producers_send_without_json_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unused(*_: object, **__: object) -> None:
        raise AssertionError("json_format.ParseDict called")

    monkeypatch.setattr(json_format, "ParseDict", unused)
    for value in _producer_records():
        assert isinstance(decode("trips", value, JSON, ARRIVED_MS), ev.Event)
    assert isinstance(
        decode("trips", json.dumps(TRIP).encode(), JSON, ARRIVED_MS, json_fast_path=False),
        Rejected,  # the last resort catches the AssertionError: json_format was asked
    )


def test_the_proto_field_names_are_read_as_the_json_names() -> None:
    snake = (
        b'{"event_id": "e1", "tenant_id": "acme", "occurred_at": "2026-11-20T08:31:00Z",'
        b' "trip_completed": {"trip_id": "t1", "user_id": "ann", "started_at":'
        b' "2026-11-20T07:55:00Z", "ended_at": "2026-11-20T08:30:00Z", "distance_km": 23.4,'
        b' "scores": {"eco_driving": 7.9, "safety": "8.5"}}}'
    )
    fast = assert_same_as_json_format(snake)
    assert fast is not None
    assert isinstance(fast.payload, ev.TripCompleted)
    assert fast.payload.scores == ev.Scores(safety=8.5, eco_driving=7.9)


# --- what is left to json_format ------------------------------------------------------------

TRIP = {
    "eventId": "e1",
    "tenantId": "acme",
    "occurredAt": "2026-11-20T08:31:00Z",
    "tripCompleted": {
        "tripId": "t1",
        "userId": "ann",
        "startedAt": "2026-11-20T07:55:00Z",
        "endedAt": "2026-11-20T08:30:00Z",
        "distanceKm": 23.4,
        "scores": {"safety": 8.7},
    },
}


def _changed(path: str, value: object) -> bytes:
    document: Any = json.loads(json.dumps(TRIP))
    *parents, last = path.split(".")
    target = document
    for name in parents:
        target = target[name]
    target[last] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "value",
    [
        # json_format takes these, but not as this module would read them: left to it
        _changed("tripCompleted.trip_id", "t2"),  # both spellings: the last one wins
        _changed("tripCompleted.distanceKm", True),  # json_format reads 1.0
        _changed("tripCompleted.distanceKm", " 23.4"),  # float() strips spaces
        _changed("tripCompleted.distanceKm", "1_0"),  # and takes underscores
        _changed("tripCompleted.scores", None),  # null: the default
        _changed("tripCompleted.scores", []),  # an empty list reads as an empty message
        _changed("tripCompleted.endedAt", "2026-11-20T08:30:00.Z"),  # an empty fraction
        _changed("tripCompleted.endedAt", "2026-11-20T08:30:00+0900:00"),  # 900 hours
        _changed("tripCompleted.endedAt", "2026-1-20T08:30:00Z"),  # strptime's single digit
        # json_format refuses these
        _changed("tripCompleted.scores", {"ecoDriving": 1, "eco_driving": 1}),  # a oneof
        _changed("trip_completed", {}),  # two members of the oneof
        _changed("tripCompleted.userId", "\ud800"),  # an unpaired surrogate
        _changed("tripCompleted.distanceKm", 10**400),
        _changed("tripCompleted.endedAt", "2026-11-20t08:30:00Z"),
        _changed("tripCompleted.endedAt", "2026-11-20T08:30:60Z"),
        _changed("tripCompleted.endedAt", "9999-12-31T23:59:59-01:00"),  # past year 9999
        _changed("tripCompleted.endedAt", "2026-11-20T08:30:00.1234567891Z"),
        json.dumps(TRIP).replace('"tripId": "t1"', '"tripId": "t1", "tripId": "t1"').encode(),
        json.dumps(TRIP).replace("23.4", "NaN").encode(),  # NaN without quotes
        json.dumps(TRIP).replace("23.4", "1e400").encode(),  # a float too large
        b"[]",
        b"\xff",
        b"[" * 100_000,
        _changed("tripCompleted.startedAt", "0001-01-01T00:00:00+00:01"),  # before year 1
        # decoding refuses these
        _changed("tenantId", ""),
        _changed("tripCompleted", {"tripId": "t1"}),
    ],
)
def test_an_unusual_record_is_left_to_json_format(value: bytes) -> None:
    assert assert_same_as_json_format(value) is None


@pytest.mark.parametrize(
    "value",
    [
        # the usual route reads these, or refuses them
        json.dumps(TRIP)
        .replace('"scores": {"safety": 8.7}', '"scores": {"safety": 8.7, "safety": 1.0}')
        .encode(),  # a key twice: refused
        json.dumps(TRIP).replace('"userId": "ann"', '"userId": "a\\u006en"').encode(),
        json.dumps(TRIP).replace("23.4", "1e400").encode(),  # refused
        json.dumps(TRIP).replace("23.4", "1" * 5000).encode(),  # refused
        json.dumps(TRIP).replace("23.4", "2" * 400).encode(),  # a double beyond 2**1000
        json.dumps(TRIP).replace('"ann"', '"\xff"').encode("latin-1"),  # not UTF-8: refused
        json.dumps(TRIP).replace('"ann"', '""').encode(),  # an empty id: refused
        json.dumps(TRIP).replace('"e1"', '"e\u0000"').encode(),
        json.dumps({**TRIP, "schemaVersion": 1}).encode(),  # a field Podium does not know
        json.dumps(dict(reversed(TRIP.items()))).encode(),  # another order
        json.dumps(TRIP)[:-1].encode(),  # cut short
    ],
)
def test_any_other_trip_takes_the_usual_route(value: bytes) -> None:
    assert json_events.canonical_trip(value, ARRIVED) is None
    assert_same_as_json_format(value)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("tripCompleted.distanceKm", "Infinity", None),  # refused by the rules, identically
        ("tripCompleted.distanceKm", "NaN", None),
        ("tripCompleted.distanceKm", "12.5", 12.5),
        ("tripCompleted.distanceKm", 12, 12.0),
        ("tripCompleted.distanceKm", "-0", -0.0),
        ("tripCompleted.endedAt", "2026-11-20T09:30:00.5+01:00", "08:30:00.500000"),
        ("tripCompleted.endedAt", "2026-11-20T03:00:00.123456789-05:30", "08:30:00.123456"),
    ],
)
def test_number_strings_and_offsets_are_read_as_json_format_reads_them(
    path: str, value: object, expected: object
) -> None:
    record = _changed(path, value)
    fast = assert_same_as_json_format(record)
    assert fast is not None
    assert isinstance(fast.payload, ev.TripCompleted)
    outcome = decode("trips", record, JSON, ARRIVED_MS)
    if expected is None:
        assert not isinstance(outcome, ev.Event)
    elif isinstance(expected, float):
        assert fast.payload.distance_km == expected
    else:
        assert fast.payload.ended_at == datetime.fromisoformat(f"2026-11-20T{expected}+00:00")


# --- fields Podium does not know -----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "paths"),
    [
        ({"schemaVersion": 3}, ["schemaVersion"]),
        ({"tripCompleted.vehicleId": "v-7"}, ["tripCompleted.vehicleId"]),
        ({"tripCompleted.vehicle_id": {"make": "x"}}, ["tripCompleted.vehicle_id"]),
        ({"tripCompleted.scores.braking": None}, ["tripCompleted.scores.braking"]),
        (
            {"schema_version": [1], "tripCompleted.scores.braking": 7.5},
            ["schema_version", "tripCompleted.scores.braking"],
        ),
    ],
)
def test_a_newer_producers_fields_are_ignored_and_named_on_the_fast_path(
    changes: dict[str, object], paths: list[str]
) -> None:
    document: Any = json.loads(json.dumps(TRIP))
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = document
        for name in parents:
            target = target[name]
        target[last] = value
    record = json.dumps(document).encode()
    fast = assert_same_as_json_format(record)
    assert fast == decode("trips", json.dumps(TRIP).encode(), JSON, ARRIVED_MS)
    assert decode_noting_unknown_fields("trips", record, JSON, ARRIVED_MS)[1] == tuple(paths)


# --- the property ---------------------------------------------------------------------------


class Obj(list[tuple[str, Any]]):
    """A JSON object as its members in order, a key possibly twice."""


def dumps(value: object, comma: str = ", ", colon: str = ": ", escape: bool = True) -> str:
    """`value` as JSON, non-ASCII characters escaped (`\\u00e9`) unless not `escape`."""
    if isinstance(value, Obj):
        return (
            "{"
            + comma.join(
                f"{json.dumps(k, ensure_ascii=escape)}{colon}{dumps(v, comma, colon, escape)}"
                for k, v in value
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + comma.join(dumps(v, comma, colon, escape) for v in value) + "]"
    # NaN and Infinity as json.loads (and json_format) read them
    return json.dumps(value, ensure_ascii=escape)


Values = st.SearchStrategy[Any]
WRONG_TYPES: Values = st.one_of(
    st.none(), st.booleans(), st.just([]), st.just(Obj()), st.lists(st.integers(), max_size=2)
)
ODD_STRINGS = st.one_of(
    st.sampled_from(["", "\ud800", "a\udc00b", "\udbff\udfff", "x\x00", "u" * 201]),
    st.text(max_size=6),
    st.integers(-5, 5),
    WRONG_TYPES,
)
STRINGS = st.sampled_from(["acme", "t-1", "ann", "\u00e9\U0001f600"])
ODD_NUMBER_STRINGS = st.one_of(
    st.sampled_from(["nan", "inf", "-nan", " 1.5", "1_0", "1e999", "-0", "+1", "", "1.", ".5"]),
    st.sampled_from(["0x10", "\uff11", "12.5e-1", "1E+2", "Infinity ", "infinity"]),
    st.floats().map(repr),
    st.integers(-(10**20), 10**20).map(str),
)
ODD_DOUBLES = st.one_of(
    st.floats(),
    st.floats(-20, 20),
    st.integers(-(2**1100), 2**1100),
    st.sampled_from(["Infinity", "-Infinity", "NaN", "-1", "12", "10.5"]),
    ODD_NUMBER_STRINGS,
    WRONG_TYPES,
)
DOUBLES = st.one_of(
    st.floats(0, 10),
    st.integers(0, 10),
    st.floats(0, 10).map(repr),
    st.sampled_from(["7", "10.0", "0", "1e1"]),
)


@st.composite
def timestamps(draw: st.DrawFn, odd: bool, days: tuple[int, int] | None = None) -> object:
    """RFC 3339 times as producers write them (in November 2026 between these days, or any
    time), or (odd) in forms strptime may or may not take, out of range, or no string."""
    if odd and draw(st.integers(0, 4)) == 0:
        return draw(st.one_of(WRONG_TYPES, st.integers(), st.text(max_size=8)))
    year = draw(st.sampled_from([2026] * 6 + [1970, 2199, 1969, 2200]))
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    if days:
        year, month, day = 2026, 11, draw(st.integers(*days))
    h, m, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    digits = draw(st.sampled_from([0, 0, 3, 6, 9]))
    fraction = f".{draw(st.integers(0, 10**digits - 1)):0{digits}d}" if digits else ""
    zone = draw(st.sampled_from(["Z", "Z", "+01:00", "-05:30", "+00:00", "-23:59", "+14:45"]))
    width, separator = 2, "T"
    if odd:  # one oddity at a time, so that each one meets an otherwise usual record
        oddity = draw(st.sampled_from(["year", "date", "time", "width", "fraction", "zone", "T"]))
        year = draw(st.sampled_from([1, 9999, 0])) if oddity == "year" else year
        if oddity == "date":
            month, day = draw(st.sampled_from([(0, 1), (13, 1), (2, 29), (2, 30), (4, 31)]))
        if oddity == "time":
            h, s = draw(st.sampled_from([(24, 0), (0, 60), (0, 61), (23, 59)]))
        width = 1 if oddity == "width" else 2
        if oddity == "fraction":
            fraction = draw(st.sampled_from([".", ".1234567891", ".5 "]))
        if oddity == "zone":
            zone = draw(st.sampled_from(["+99:99", "z", "", "+0100", "-1:00", "Z+01:00"]))
        separator = draw(st.sampled_from(["t", " ", "T"])) if oddity == "T" else "T"
    return (
        f"{year:04d}-{month:0{width}d}-{day:02d}{separator}"
        f"{h:02d}:{m:0{width}d}:{s:02d}{fraction}{zone}"
    )


@dataclass(frozen=True)
class Field:
    json_name: str
    usual: Values
    odd: Values


@st.composite
def objects(draw: st.DrawFn, fields: dict[str, Field], noise: int) -> Obj:
    """A JSON object of these fields (by proto name), each in either spelling with a usual
    value; with a chance of `noise` in 100 for each, left out or named twice (in either
    spelling) or given an odd value, and the object a key of no field."""
    members = Obj()
    for name, field in fields.items():
        spellings = [draw(st.sampled_from([field.json_name, name]))]
        if draw(st.integers(0, 99)) < noise:
            spellings = draw(
                st.sampled_from(
                    [[], [field.json_name, name], [name, field.json_name], spellings * 2]
                )
            )
        for spelling in spellings:
            odd = draw(st.integers(0, 99)) < noise
            members.append((spelling, draw(field.odd if odd else field.usual)))
    if draw(st.integers(0, 99)) < noise:
        members.append((draw(st.sampled_from(["bogus", "tripId", "[x.y]", "@type"])), 1))
    return Obj(draw(st.permutations(members)))


def trip_completed(noise: int) -> Values:
    score = Field("", DOUBLES, ODD_DOUBLES)
    scores = objects(
        {
            "safety": replace(score, json_name="safety"),
            "eco_driving": replace(score, json_name="ecoDriving"),
            "distraction": replace(score, json_name="distraction"),
            "speeding": replace(score, json_name="speeding"),
        },
        noise,
    )
    return objects(
        {
            "trip_id": Field("tripId", STRINGS, ODD_STRINGS),
            "user_id": Field("userId", STRINGS, ODD_STRINGS),
            "started_at": Field("startedAt", timestamps(False, (1, 14)), timestamps(odd=True)),
            "ended_at": Field("endedAt", timestamps(False, (15, 28)), timestamps(odd=True)),
            "distance_km": Field("distanceKm", DOUBLES, ODD_DOUBLES),
            "scores": Field("scores", scores, WRONG_TYPES),
        },
        noise,
    )


def trip_deleted(noise: int) -> Values:
    return objects(
        {
            "trip_id": Field("tripId", STRINGS, ODD_STRINGS),
            "user_id": Field("userId", STRINGS, ODD_STRINGS),
        },
        noise,
    )


@st.composite
def envelopes(draw: st.DrawFn, noise: int | None = None) -> Obj:
    """A trip record's JSON: mostly as producers write it, with a chance of oddities that
    varies from one example to the next (unless given), so that both routes see plenty of
    either."""
    if noise is None:
        noise = draw(st.sampled_from([0, 2, 5, 15, 40]))
    meta = {
        "event_id": Field("eventId", STRINGS, ODD_STRINGS),
        "tenant_id": Field("tenantId", STRINGS, ODD_STRINGS),
        "occurred_at": Field("occurredAt", timestamps(odd=False), timestamps(odd=True)),
    }
    members = draw(objects(meta, noise))
    completed = (["tripCompleted", "trip_completed"], trip_completed(noise))
    deleted = (["tripDeleted", "trip_deleted"], trip_deleted(noise))
    events = [draw(st.sampled_from([completed, completed, deleted]))]
    if draw(st.integers(0, 99)) < noise:  # none, two, or one twice
        events = draw(st.sampled_from([[], [completed, deleted], events * 2]))
    for spellings, values in events:
        odd = draw(st.integers(0, 99)) < noise
        members.append((draw(st.sampled_from(spellings)), draw(WRONG_TYPES if odd else values)))
    return Obj(draw(st.permutations(members)))


def _odd_values(key: str) -> Values:
    """Odd values for the field a key names."""
    if key.endswith(("At", "_at")):
        return timestamps(odd=True)
    if key in ("distanceKm", "distance_km", "safety", "ecoDriving", "eco_driving", "speeding"):
        return ODD_DOUBLES
    if key.endswith(("Id", "_id")):
        return ODD_STRINGS
    return WRONG_TYPES


def _other_spelling(key: str) -> str:
    if "_" in key:
        head, *rest = key.split("_")
        return head + "".join(word.title() for word in rest)
    return re.sub("([A-Z])", lambda upper: "_" + upper[1].lower(), key)


@st.composite
def one_oddity(draw: st.DrawFn) -> Obj:
    """A record as producers write it, with one oddity: a member's value odd for its field,
    the member left out, twice, or twice in both spellings."""
    envelope = draw(envelopes(noise=0))
    places: list[tuple[Obj, int]] = []
    objects_to_visit = [envelope]
    while objects_to_visit:
        current = objects_to_visit.pop()
        places += [(current, index) for index in range(len(current))]
        objects_to_visit += [value for _, value in current if isinstance(value, Obj)]
    members, index = draw(st.sampled_from(places))
    key, value = members[index]
    oddity = draw(st.sampled_from(["value"] * 4 + ["drop", "twice", "both", "event"]))
    if oddity == "event":  # a second event, in either spelling
        event = draw(st.sampled_from(["tripCompleted", "trip_deleted", "tripDeleted"]))
        envelope.insert(draw(st.integers(0, len(envelope))), (event, Obj()))
    elif oddity == "value":
        members[index] = (key, draw(_odd_values(key)))
    elif oddity == "drop":
        del members[index]
    else:
        twin = key if oddity == "twice" else _other_spelling(key)
        members.insert(draw(st.integers(0, len(members))), (twin, value))
    return envelope


UNKNOWN_KEYS = st.sampled_from(
    ["vehicleId", "vehicle_id", "schemaVersion", "braking", "@type", "[x.y]", "", "\u00e9t\u00e9"]
)
UNKNOWN_VALUES: Values = st.recursive(
    st.one_of(WRONG_TYPES, st.integers(), st.text(max_size=4), st.floats()),
    lambda inner: st.lists(st.tuples(UNKNOWN_KEYS, inner), max_size=2).map(Obj),
    max_leaves=4,
)


@st.composite
def with_unknown_fields(draw: st.DrawFn) -> Obj:
    """A record as producers write it, or with one oddity, and one to three members that
    name no field (of any JSON type, objects with members of their own included), in any
    of its objects: what a newer producer sends."""
    # a copy: WRONG_TYPES's empty object is one instance, which must stay empty
    envelope = copy.deepcopy(draw(st.one_of(envelopes(noise=0), one_oddity())))
    objects_in = [envelope]
    for _, value in envelope:
        if isinstance(value, Obj):
            objects_in += [value, *(v for _, v in value if isinstance(v, Obj))]
    for _ in range(draw(st.integers(1, 3))):
        members = draw(st.sampled_from(objects_in))
        place = draw(st.integers(0, len(members)))
        members.insert(place, (draw(UNKNOWN_KEYS), draw(UNKNOWN_VALUES)))
    return envelope


@settings(max_examples=profiles.examples(800), deadline=None)
@given(st.one_of(envelopes(), one_oddity(), one_oddity(), with_unknown_fields()).map(dumps))
def test_the_fast_path_is_none_or_decodes_as_through_json_format(document: str) -> None:
    assert_same_as_json_format(document.encode())


@st.composite
def in_field_order(draw: st.DrawFn) -> str:
    """A trip record as json_format writes it (`json_events.canonical_trip`): its members in
    the order of their fields' numbers, the scores in any, the optional ones sometimes left
    out, in any of JSON's whitespace; each value usual or, by a chance that varies from one
    example to the next, odd (a score may come twice)."""
    noise = draw(st.sampled_from([0, 5, 20, 50]))
    numbers = st.one_of(st.floats(0, 10), st.integers(0, 10), st.floats(0, 20_000))

    def value(usual: Values, odd: Values) -> object:
        return draw(odd if draw(st.integers(0, 99)) < noise else usual)

    scores = Obj()
    for name in draw(st.permutations(["safety", "ecoDriving", "distraction", "speeding"])):
        if draw(st.booleans()):
            scores.append((name, value(numbers, ODD_DOUBLES)))
    if scores and draw(st.integers(0, 99)) < noise:
        scores.insert(draw(st.integers(0, len(scores))), scores[0])
    trip = Obj(
        [
            ("tripId", value(STRINGS, ODD_STRINGS)),
            ("userId", value(STRINGS, ODD_STRINGS)),
            ("startedAt", value(timestamps(False, (1, 14)), timestamps(odd=True))),
            ("endedAt", value(timestamps(False, (15, 28)), timestamps(odd=True))),
        ]
    )
    if draw(st.integers(0, 3)):
        trip.append(("distanceKm", value(numbers, ODD_DOUBLES)))
    if draw(st.integers(0, 3)):
        trip.append(("scores", scores))
    envelope = Obj(
        [
            ("eventId", value(STRINGS, ODD_STRINGS)),
            ("tenantId", value(STRINGS, ODD_STRINGS)),
            ("occurredAt", value(timestamps(odd=False), timestamps(odd=True))),
            ("tripCompleted", trip),
        ]
    )
    comma, colon = draw(
        st.sampled_from([(", ", ": "), (",", ":"), (",\n  ", " : "), ("\t,\r", ":\n")])
    )
    return dumps(envelope, comma, colon, escape=draw(st.booleans()))


@settings(max_examples=profiles.examples(800), deadline=None)
@given(in_field_order())
def test_a_trip_in_field_order_is_read_as_its_loaded_json_is(document: str) -> None:
    assert_same_as_json_format(document.encode("utf-8", "surrogatepass"))  # may not be UTF-8


@settings(max_examples=profiles.examples(300), deadline=None)
@given(
    trip=st.builds(
        lambda km, safety, eco, seconds, micros: (km, safety, eco, seconds, micros),
        st.floats(0, 20_000),
        st.one_of(st.none(), st.floats(-1, 11)),
        st.one_of(st.none(), st.floats(0, 10)),
        st.integers(0, 7_258_118_399),
        st.integers(0, 999_999),
    )
)
def test_a_well_formed_trip_is_recognised_whatever_its_figures(
    trip: tuple[float, float | None, float | None, int, int],
) -> None:
    km, safety, eco, seconds, micros = trip
    envelope = trip_envelope("t1", "ann", km=km)
    envelope.trip_completed.scores.Clear()
    if safety is not None:
        envelope.trip_completed.scores.safety = safety
    if eco is not None:
        envelope.trip_completed.scores.eco_driving = eco
    envelope.trip_completed.ended_at.seconds = seconds
    envelope.trip_completed.ended_at.nanos = micros * 1000
    value = json_format.MessageToJson(envelope).encode()
    assert assert_same_as_json_format(value) is not None
    assert json_events.canonical_trip(value, ARRIVED) is not None
