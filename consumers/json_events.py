"""The JSON fast path: a record's proto3 JSON, once loaded (`json.loads`), read straight into
the domain event, for the envelopes producers send most (trips), without protobuf's
pure-Python `json_format`, which is most of the cost of JSON ingest.

The contract, held by a property test against `json_format` (tests/unit/test_json_events.py):
`event_of` gives exactly the event `consumers.decode` builds through `json_format` before the
rules run, with the same unknown fields (`consumers.unknown_fields`: ignored, and named by
the same paths), or None, meaning "not recognised: take the json_format route". It
recognises a strict subset of what json_format accepts and leaves everything else to it: a
field named in both spellings, a null, a value of another JSON type than the usual one, a
number string or a timestamp outside the common forms, a record json_format or the decoding
refuses (no ids, no time, no event or two). It never raises. Both routes share the rest of
`consumers.decode`: loading the JSON (a key twice is refused there), the record's time, the
rules (`problem_with`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from podium.events.v1 import trips_pb2

from consumers.remembered import Remembered
from consumers.unknown_fields import field_path
from service.domain import events as ev

Members = dict[str, Any]


class _Unusual(Exception):
    """Something json_format may read otherwise than this module would: left to it."""


def event_of(
    family: str, document: object, arrived_at: datetime
) -> tuple[ev.Event, list[str]] | None:
    """The event of a JSON record of the topic family (its loaded document), as
    `consumers.decode` would build it through json_format (before the rules), and the paths
    of its unknown fields; or None when it is left to json_format."""
    family_reader = _FAMILIES.get(family)
    if family_reader is None:
        return None
    names, payloads = family_reader
    unknown: list[str] = []
    try:
        return _envelope(document, names, payloads, arrived_at, unknown), unknown
    except _Unusual:
        return None


# --- fields, read as json_format reads them ------------------------------------------------


class _Names:
    """A message's field names as JSON keys: its JSON names (lowerCamelCase), read here, and
    its names in the .proto file, which json_format reads too (the JSON name first); and the
    path of the message in the envelope (`consumers.unknown_fields`)."""

    def __init__(self, message: type[Message], path: str = "") -> None:
        fields = message.DESCRIPTOR.fields
        self.json = frozenset(f.json_name for f in fields)
        self.of_key = {
            **{f.name: f.json_name for f in fields},
            **{f.json_name: f.json_name for f in fields},
        }
        self.path = path


def _members(value: object, names: _Names, unknown: list[str]) -> Members:
    """A JSON object's members by the JSON names of their fields; a key that names no field
    is left out and its path noted in `unknown`. Each field must come once (json_format lets
    the last of two spellings win, or refuses both for a oneof member), and no value be null
    (which json_format reads as the default)."""
    if type(value) is not dict:
        raise _Unusual
    if value.keys() <= names.json and None not in value.values():
        return value  # as producers write it: nothing to rename
    members: Members = {}
    for key, item in value.items():
        name = names.of_key.get(key)
        if name is None:
            unknown.append(field_path(names.path, key))
            continue
        if name in members or item is None:
            raise _Unusual
        members[name] = item
    return members


def _required(members: Members, name: str) -> Any:
    """A field decoding refuses a record without."""
    if name not in members:
        raise _Unusual
    return members[name]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _string(value: object) -> str:
    """A string; json_format refuses one with an unpaired surrogate (a paired one, only
    escaped, json.loads joins into one character)."""
    if type(value) is not str or (not value.isascii() and _SURROGATE.search(value)):
        raise _Unusual
    return value


_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPELLED = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
_INT_AS_DOUBLE = 2**1000
"""Beyond it an int may not fit a double (json_format fails on float(int))."""


def _double(value: object) -> float:
    """A double: a finite JSON number, a plain decimal string (both through `float`, as
    json_format does) or the names proto3 JSON gives the non-finite values."""
    if isinstance(value, bool):  # json_format takes true for 1.0: a producer's mistake
        raise _Unusual
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, int) and -_INT_AS_DOUBLE < value < _INT_AS_DOUBLE:
        return float(value)
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return float(value)
        if value in _SPELLED:
            return _SPELLED[value]
    raise _Unusual


def _optional_double(members: Members, name: str) -> float | None:
    return _double(members[name]) if name in members else None


# RFC 3339 as protobuf writes it and most producers do: "Z" or an offset, up to 9 digits.
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_EDGE_YEARS = ("0001", "9999")
"""Where an offset can take a time out of the range of protobuf's Timestamp."""


def _timestamp(value: object) -> datetime:
    """A Timestamp's moment as `consumers.decode` makes it of the Timestamp json_format reads.

    For the strict form above, `datetime.fromisoformat` (in C, four times cheaper than
    working it out here) gives that very datetime: the same day and time (strptime and it
    refuse the same impossible dates), the same offset, and the same microseconds. It keeps
    the first six digits of the fraction; json_format keeps the nanoseconds
    round(float("0." + digits) * 1e9), which for up to nine digits is the digits exactly
    (the float's error is far below a half), and decode keeps nanos // 1000 of them.
    """
    if type(value) is not str or _TIMESTAMP.fullmatch(value) is None:
        raise _Unusual
    return _moment(value)


def _moment(value: str) -> datetime:
    """`_timestamp` of a string already seen to be of the strict form."""
    try:
        if value[-1] == "Z":
            return datetime.fromisoformat(value)  # in UTC: the one `timezone.utc`
        if value.startswith(_EDGE_YEARS):
            raise _Unusual
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:  # no such day (2026-02-30, year 0)
        raise _Unusual from None


# --- envelopes and payloads ----------------------------------------------------------------


Payloads = Mapping[str, Callable[[object, list[str]], ev.Payload]]
_META = frozenset({"eventId", "tenantId", "occurredAt"})
"""An envelope's fields besides its `oneof event` (every envelope has these three)."""


def _envelope(
    document: object, names: _Names, payloads: Payloads, arrived_at: datetime, unknown: list[str]
) -> ev.Event:
    envelope = _members(document, names, unknown)
    kinds = [name for name in envelope if name not in _META]  # the `oneof event` members
    if len(kinds) != 1 or kinds[0] not in payloads:  # none: decoding refuses it; two: json_format
        raise _Unusual
    event_id = _string(envelope.get("eventId", ""))
    tenant_id = _string(envelope.get("tenantId", ""))
    if not event_id or not tenant_id:
        raise _Unusual
    occurred_at = _timestamp(_required(envelope, "occurredAt"))
    payload = payloads[kinds[0]](envelope[kinds[0]], unknown)
    return ev.Event(ev.Meta(tenant_id, event_id, occurred_at, arrived_at), payload)


_TRIP_COMPLETED = _Names(trips_pb2.TripCompleted, "tripCompleted")
_TRIP_SCORES = _Names(trips_pb2.TripScores, "tripCompleted.scores")
_TRIP_DELETED = _Names(trips_pb2.TripDeleted, "tripDeleted")


def _trip_completed(value: object, unknown: list[str]) -> ev.TripCompleted:
    trip = _members(value, _TRIP_COMPLETED, unknown)
    return ev.TripCompleted(
        trip_id=_string(trip.get("tripId", "")),
        user_id=_string(trip.get("userId", "")),
        started_at=_timestamp(_required(trip, "startedAt")),
        ended_at=_timestamp(_required(trip, "endedAt")),
        distance_km=_double(trip.get("distanceKm", 0.0)),
        scores=_scores(trip.get("scores", {}), unknown),
    )


def _scores(value: object, unknown: list[str]) -> ev.Scores:
    scores = _members(value, _TRIP_SCORES, unknown)
    return ev.Scores(
        safety=_optional_double(scores, "safety"),
        eco_driving=_optional_double(scores, "ecoDriving"),
        distraction=_optional_double(scores, "distraction"),
        speeding=_optional_double(scores, "speeding"),
    )


def _trip_deleted(value: object, unknown: list[str]) -> ev.TripDeleted:
    trip = _members(value, _TRIP_DELETED, unknown)
    return ev.TripDeleted(
        trip_id=_string(trip.get("tripId", "")), user_id=_string(trip.get("userId", ""))
    )


_FAMILIES: dict[str, tuple[_Names, Payloads]] = {
    "trips": (
        _Names(trips_pb2.TripEvent),
        {"tripCompleted": _trip_completed, "tripDeleted": _trip_deleted},
    ),
}
"""The envelopes read here, by topic family: their field names, and a reader for each event
of their `oneof event` that is read here (another is left to json_format)."""


# --- a trip as producers write it, read without loading the JSON -----------------------------

_W = r"[ \t\n\r]*+"
"""JSON's whitespace (possessive: nothing to try again)."""
_ID = r'"([^"\\\x00-\x1f]++)"'
"""A string without escapes or control characters (which JSON allows nowhere unescaped): its
characters are the string's, as json.loads reads them. Empty ones are left to `event_of`."""
_AT = f'"({_TIMESTAMP.pattern})"'
_JSON_NUMBER = r"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?"
"""A JSON number, as json.loads's scanner reads one."""
_NEXT = f"{_W},{_W}"


def _member(key: str, value: str) -> str:
    return f'"{key}"{_W}:{_W}{value}'


_SCORE = _member("(?:safety|ecoDriving|distraction|speeding)", _JSON_NUMBER)
_CANONICAL_TRIP = re.compile(
    f"{_W}\\{{{_W}{_member('eventId', _ID)}{_NEXT}{_member('tenantId', _ID)}{_NEXT}"
    f"{_member('occurredAt', _AT)}{_NEXT}{_member('tripCompleted', '')}\\{{{_W}"
    f"{_member('tripId', _ID)}{_NEXT}{_member('userId', _ID)}{_NEXT}"
    f"{_member('startedAt', _AT)}{_NEXT}{_member('endedAt', _AT)}"
    f"(?:{_NEXT}{_member('distanceKm', f'({_JSON_NUMBER})')})?"
    f"(?:{_NEXT}{_member('scores', '')}\\{{{_W}((?:{_SCORE}(?:{_NEXT}{_SCORE})*+)?){_W}\\}})?"
    f"{_W}\\}}{_W}\\}}{_W}"
)
"""A TripCompleted envelope with every field Podium knows in the order of their numbers, as
protobuf's `json_format` writes it (and most producers' libraries do), any of the scores in
any order; the optional ones (a zero distance, no scores) may be left out."""
_SCORE_MEMBER = re.compile(f'"(safety|ecoDriving|distraction|speeding)"{_W}:{_W}({_JSON_NUMBER})')
_NO_SCORES = ev.NO_SCORES


def canonical_trip(value: bytes, arrived_at: datetime) -> ev.Event | None:
    """The event of a trip record's value written as `_CANONICAL_TRIP` says, read by one
    regular expression instead of being loaded as JSON and read member by member; exactly
    `event_of` of its loaded document, which then has no unknown fields. None for any other
    value (a key twice among the scores too), which takes the usual route (its JSON is then
    loaded, and may be refused)."""
    try:
        text = value.decode("utf-8")  # as `consumers.decode.load_json` begins
    except UnicodeDecodeError:
        return None
    match = _CANONICAL_TRIP.fullmatch(text)
    if match is None:
        return None
    event_id, tenant_id, occurred, trip_id, user_id, started, ended, km, scores = match.groups()
    try:
        ended_at = _moment(ended)
        occurred_at = ended_at if occurred == ended else _moment(occurred)  # as often sent
        return ev.Event(
            ev.Meta(tenant_id, event_id, occurred_at, arrived_at),
            ev.TripCompleted(  # positional: the hot path of JSON ingest
                trip_id,
                user_id,
                _moment(started),
                ended_at,
                0.0 if km is None else _number(km),
                _NO_SCORES if not scores else _scores_of(scores),
            ),
        )
    except _Unusual:
        return None


REMEMBERED_SCORES = 4_096
"""Trips' scores remembered at most, by their JSON (or their binary message: decode)."""
_SCORES_SEEN: Remembered[str, ev.Scores] = Remembered(REMEMBERED_SCORES)


def _scores_of(members: str) -> ev.Scores:
    """The scores of a trip's `scores` members (their JSON text), remembered for the next
    trip with the same text: scores repeat, and reading them is a good part of reading the
    trip."""
    found = _SCORES_SEEN.get(members)
    return _SCORES_SEEN.keep(members, _canonical_scores(members)) if found is None else found


def _canonical_scores(members: str) -> ev.Scores:
    pairs = _SCORE_MEMBER.findall(members)
    scores = dict(pairs)
    if len(scores) != len(pairs):  # a key twice: json.loads refuses it (`load_json`)
        raise _Unusual
    get = scores.get
    return ev.Scores(
        _optional_number(get("safety")),
        _optional_number(get("ecoDriving")),
        _optional_number(get("distraction")),
        _optional_number(get("speeding")),
    )


def _optional_number(token: str | None) -> float | None:
    return None if token is None else _number(token)


def _number(token: str) -> float:
    """A JSON number as `_double` reads what json.loads makes of it: a float of its text when
    it has a fraction or an exponent, else an int, made a float."""
    if token.lstrip("-").isdigit():
        try:
            return _double(int(token))
        except ValueError:  # more digits than Python reads as an int: json.loads refuses it
            raise _Unusual from None
    number = float(token)
    if not math.isfinite(number):
        raise _Unusual
    return number
