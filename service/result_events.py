"""Results (`service.domain.results`) as the `podium.events.v1.ResultEvent` envelope
(docs/events.md#results): the binary form the outbox keeps, and the record value it goes out
as (binary, or its proto3 JSON form under `PODIUM_RESULTS_FORMAT=json`)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import json_format, timestamp_pb2
from podium.events.v1 import results_pb2
from podium.v1 import common_pb2

from service.domain import results as rs
from service.domain.standings import metres_to_km
from service.proto_enums import CHALLENGE_THEMES, RANKING_TYPES

JSON_HEADERS = (("content-type", b"application/json"),)


def encode(result: rs.Result) -> bytes:
    """The binary `ResultEvent` of a result: the same bytes for the same result (fields in
    number order, lists in the order the rules give them)."""
    return envelope(result).SerializeToString(deterministic=True)


def envelope(result: rs.Result) -> results_pb2.ResultEvent:
    event = results_pb2.ResultEvent(
        event_id=rs.result_event_id(result.window),
        tenant_id=result.window.tenant_id,
        occurred_at=_timestamp(result.frozen_at),
    )
    if isinstance(result, rs.MonthResult):
        event.month_frozen.CopyFrom(_month(result))
    else:
        event.challenge_frozen.CopyFrom(_challenge(result))
    return event


def record_value(payload: bytes, results_format: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers a stored result goes out with."""
    if results_format != "json":
        return payload, []
    event = results_pb2.ResultEvent.FromString(payload)
    text = json_format.MessageToJson(event, indent=None, sort_keys=True)
    return text.encode(), list(JSON_HEADERS)


def as_json(payload: bytes) -> dict[str, object]:
    """A stored result as its proto3 JSON form (for operators)."""
    event = results_pb2.ResultEvent.FromString(payload)
    found: dict[str, object] = json_format.MessageToDict(event)
    return found


def _month(result: rs.MonthResult) -> results_pb2.MonthFrozen:
    month = result.window.month
    return results_pb2.MonthFrozen(
        month=common_pb2.YearMonth(year=month.year, month_number=month.number),
        type=RANKING_TYPES[result.window.kind],
        ranked=[_driver(d) for d in result.ranked],
        not_ranked=[_driver(d) for d in result.not_ranked],
    )


def _driver(driver: rs.FrozenDriver) -> results_pb2.FrozenDriver:
    line = results_pb2.FrozenDriver(
        user_id=driver.user_id,
        rank=driver.rank,
        distance_km=metres_to_km(driver.metres),
        trips=driver.trips,
        groups=list(driver.groups),
    )
    if driver.score_hundredths is not None:
        line.score = driver.score_hundredths / 100
    return line


def _challenge(result: rs.ChallengeResult) -> results_pb2.ChallengeFrozen:
    challenge = result.challenge
    return results_pb2.ChallengeFrozen(
        challenge_id=challenge.challenge_id,
        theme=CHALLENGE_THEMES[challenge.theme],
        start_at=_timestamp(challenge.start_at),
        end_at=_timestamp(challenge.end_at),
        ranked=[_entrant(e) for e in result.ranked],
        not_ranked=[_entrant(e) for e in result.not_ranked],
        progress=[
            results_pb2.FrozenProgress(
                user_id=p.user_id,
                rank=p.rank,
                score=p.score_hundredths / 100,
                score_before=p.score_before_hundredths / 100,
                score_evolution=p.evolution_hundredths / 100,
            )
            for p in result.progress
        ],
        registered_users=result.registered_users,
        ranked_users=result.ranked_users,
        users_with_data_before=result.users_with_data_before,
        total_distance_km=metres_to_km(result.total_metres),
        total_trips=result.total_trips,
    )


def _entrant(entrant: rs.FrozenEntrant) -> results_pb2.FrozenEntrant:
    line = results_pb2.FrozenEntrant(
        user_id=entrant.user_id,
        rank=entrant.rank,
        distance_km=metres_to_km(entrant.metres),
        trips=entrant.trips,
        registered_at=_timestamp(entrant.registered_at),
        groups=list(entrant.groups),
    )
    if entrant.score_hundredths is not None:
        line.score = entrant.score_hundredths / 100
    return line


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp
