"""The API's one conversion boundary: protobuf requests to domain values, domain answers to
protobuf responses. Every enum crosses through an explicit table (never by number or by
name), and a test checks each table covers its proto enum both ways."""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from google.protobuf import timestamp_pb2
from podium.v1 import challenges_pb2, common_pb2, paths_pb2, tasks_pb2
from podium.v1 import driver_ranking_pb2 as ranking_pb2

from service.app.queries import (
    ChallengeBoard,
    ChallengeProgress,
    ChallengeRanking,
    MonthBoard,
    MonthRanking,
)
from service.domain import events as ev
from service.domain.boards import Around, Page, Shortfall
from service.domain.challenges import Entry, ProgressLine
from service.domain.errors import InvalidRankType
from service.domain.paths import (
    DetailedStatusReason,
    DetailedStatusType,
    PathResult,
    PathStats,
    PathStatus,
)
from service.domain.ranking import DriverMonth, Month, Profile, requested_month
from service.domain.standings import Placed, metres_to_km
from service.domain.tasks import Task
from service.proto_enums import CHALLENGE_THEMES, RANKING_TYPES, TASK_TYPES

E = TypeVar("E")
P = TypeVar("P", bound=int)

# --- enums -----------------------------------------------------------------------------------

TASK_STATUSES: Mapping[ev.TaskStatus, common_pb2.TaskStatus] = {
    ev.TaskStatus.PENDING: common_pb2.TASK_STATUS_PENDING,
    ev.TaskStatus.IN_PROGRESS: common_pb2.TASK_STATUS_IN_PROGRESS,
    ev.TaskStatus.COMPLETED: common_pb2.TASK_STATUS_COMPLETED,
    ev.TaskStatus.CANCELED: common_pb2.TASK_STATUS_CANCELED,
    ev.TaskStatus.FAILED: common_pb2.TASK_STATUS_FAILED,
}
PATH_STATUSES: Mapping[PathStatus, paths_pb2.PathStatus] = {
    PathStatus.ON_TIME: paths_pb2.PATH_STATUS_ON_TIME,
    PathStatus.LATE: paths_pb2.PATH_STATUS_LATE,
    PathStatus.COMPLETED: paths_pb2.PATH_STATUS_COMPLETED,
    PathStatus.AWAITING_CORRECTION: paths_pb2.PATH_STATUS_AWAITING_CORRECTION,
}
PATH_RESULTS: Mapping[PathResult, paths_pb2.PathResult] = {
    PathResult.SUCCESSFUL: paths_pb2.PATH_RESULT_SUCCESSFUL,
    PathResult.UNSUCCESSFUL: paths_pb2.PATH_RESULT_UNSUCCESSFUL,
    PathResult.RETAKE: paths_pb2.PATH_RESULT_RETAKE,
}
DETAILED_TYPES: Mapping[DetailedStatusType, paths_pb2.DetailedStatusType] = {
    DetailedStatusType.AWAITING_CORRECTION: paths_pb2.DETAILED_STATUS_TYPE_AWAITING_CORRECTION,
    DetailedStatusType.LATE: paths_pb2.DETAILED_STATUS_TYPE_LATE,
    DetailedStatusType.NOT_YET_STARTED: paths_pb2.DETAILED_STATUS_TYPE_NOT_YET_STARTED,
    DetailedStatusType.ON_TIME: paths_pb2.DETAILED_STATUS_TYPE_ON_TIME,
    DetailedStatusType.SESSION_NOT_OPENED: paths_pb2.DETAILED_STATUS_TYPE_SESSION_NOT_OPENED,
    DetailedStatusType.SUCCESSFUL: paths_pb2.DETAILED_STATUS_TYPE_SUCCESSFUL,
    DetailedStatusType.TO_RETAKE: paths_pb2.DETAILED_STATUS_TYPE_TO_RETAKE,
    DetailedStatusType.UNSUCCESSFUL: paths_pb2.DETAILED_STATUS_TYPE_UNSUCCESSFUL,
}
DETAILED_REASONS: Mapping[DetailedStatusReason, paths_pb2.DetailedStatusReason] = {
    DetailedStatusReason.SESSION_ENDED: paths_pb2.DETAILED_STATUS_REASON_SESSION_ENDED,
    DetailedStatusReason.MANDATORY_REPLAY: paths_pb2.DETAILED_STATUS_REASON_MANDATORY_REPLAY,
}
_SCORE_KINDS: Mapping[int, ev.ScoreKind] = {int(n): kind for kind, n in RANKING_TYPES.items()}


def ranking_type(number: int) -> ev.ScoreKind:
    """A request's ranking type; unspecified or unknown is the caller's error."""
    kind = _SCORE_KINDS.get(number)
    if kind is None:
        raise InvalidRankType()
    return kind


def month_of(request: HasMonth, now: datetime) -> Month:
    """The month a request asks for: unset, the month of `now`."""
    if not request.HasField("month"):
        return Month.of(now)
    return requested_month(request.month.year, request.month.month_number, now)


class HasMonth(Protocol):
    """A request with an optional `month`."""

    @property
    def month(self) -> common_pb2.YearMonth: ...

    def HasField(self, name: Literal["month"], /) -> bool: ...


def _optional(table: Mapping[E, P], value: E | None, unspecified: P) -> P:
    return unspecified if value is None else table[value]


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# --- driver ranking ----------------------------------------------------------------------------


def month_ranking_message(ranking: MonthRanking) -> ranking_pb2.MonthRanking:
    """Entries are added in place: building each apart and copying it into the list costs
    more (bench/RESULTS.md, "Figures once in docstrings")."""
    standings = ranking.standings
    message = ranking_pb2.MonthRanking(
        monthNumber=ranking.month.number,
        year=ranking.month.year,
        driverRankedNumber=len(standings.ranked),
    )
    add_ranked = message.driverRanked.add
    for placed in standings.ranked:
        add_ranked(**_ranked_driver(placed))
    add_unranked = message.driverNotRanked.add
    for driver in standings.not_ranked:
        add_unranked(**_unranked_driver(driver))
    return message


MonthPieces = tuple[
    dict[str, tuple[DriverMonth, bytes, bytes]], dict[str, tuple[DriverMonth, bytes]]
]
"""What the bytes of a month's ranking were made of, by user id: each ranked driver's fields
serialized before and after their rank, each other driver's serialized entry."""

_RANKED_ENTRY = ranking_pb2.MonthRanking.DRIVERRANKED_FIELD_NUMBER << 3 | 2
_UNRANKED_ENTRY = ranking_pb2.MonthRanking.DRIVERNOTRANKED_FIELD_NUMBER << 3 | 2
_RANK_TAG = ranking_pb2.RankedDriver.RANK_FIELD_NUMBER << 3
_NO_DOUBLE = bytes(8)


def month_ranking_bytes(
    ranking: MonthRanking, pieces: MonthPieces | None = None
) -> tuple[bytes, MonthPieces]:
    """`month_ranking_message(ranking)` serialized, the very same bytes (a unit test holds
    them together), written entry by entry in protobuf's wire format and reusing `pieces`
    (what the previous bytes of the same board were made of): a driver whose figures did not
    change keeps the bytes of their fields, their rank put in between, so a rank shift costs
    a few bytes per driver, not the whole answer through protobuf again."""
    ranked_before, others_before = pieces or ({}, {})
    ranked_now: dict[str, tuple[DriverMonth, bytes, bytes]] = {}
    others_now: dict[str, tuple[DriverMonth, bytes]] = {}
    standings = ranking.standings
    head = ranking_pb2.MonthRanking(
        monthNumber=ranking.month.number,
        year=ranking.month.year,
        driverRankedNumber=len(standings.ranked),
    )
    out = [head.SerializeToString()]
    extend = out.extend
    ranks, lengths = _ranks(len(standings.ranked)), _LENGTHS
    for placed in standings.ranked:
        driver = placed.entrant
        user = driver.profile.user_id
        piece = ranked_before.get(user)
        if piece is None or (piece[0] is not driver and piece[0] != driver):
            piece = _ranked_piece(driver, placed.score_hundredths)
        ranked_now[user] = piece
        rank = ranks[placed.rank]
        extend((lengths[len(piece[1]) + len(rank) + len(piece[2])], piece[1], rank, piece[2]))
    append = out.append
    for driver in standings.not_ranked:
        user = driver.profile.user_id
        other = others_before.get(user)
        if other is None or (other[0] is not driver and other[0] != driver):
            tally = driver.tally
            body = _names_bytes(driver.profile) + _double(5, metres_to_km(tally.metres))
            body += _int(6, tally.trips)
            other = (driver, _varint(_UNRANKED_ENTRY) + _varint(len(body)) + body)
        others_now[user] = other
        append(other[1])
    return b"".join(out), (ranked_now, others_now)


def _ranked_piece(driver: DriverMonth, score_hundredths: int) -> tuple[DriverMonth, bytes, bytes]:
    tally = driver.tally
    after = _double(6, score_hundredths / 100) + _double(7, metres_to_km(tally.metres))
    return driver, _names_bytes(driver.profile), after + _int(8, tally.trips)


class _Prefixes(dict[int, bytes]):
    """A ranked entry's tag and length, by length, made once."""

    def __missing__(self, length: int) -> bytes:
        made = self[length] = _varint(_RANKED_ENTRY) + _varint(length)
        return made


_LENGTHS = _Prefixes()
_RANKS: list[bytes] = [b""]
"""A rank field's bytes, by rank, made once (as far as the biggest board needed)."""


_RANKS_GROWING = threading.Lock()


def _ranks(up_to: int) -> list[bytes]:
    if len(_RANKS) <= up_to:
        with _RANKS_GROWING:  # boards are written on several worker threads
            while len(_RANKS) <= up_to:
                _RANKS.append(_varint(_RANK_TAG) + _varint(len(_RANKS)))
    return _RANKS


def _names_bytes(profile: Profile) -> bytes:
    """A driver's fields 1 to 4 (user id and names) as protobuf writes them (an empty string
    is left out)."""
    fields = (profile.user_id, profile.firstname, profile.lastname, profile.pseudo)
    return b"".join(
        _length_delimited(number, text.encode())
        for number, text in enumerate(fields, start=1)
        if text
    )


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _double(number: int, value: float) -> bytes:
    """A double field; zero is left out, as proto3 does."""
    packed = struct.pack("<d", value)
    return b"" if packed == _NO_DOUBLE else bytes([number << 3 | 1]) + packed


def _int(number: int, value: int) -> bytes:
    """A non-negative int32 field; zero is left out, as proto3 does."""
    return _varint(number << 3) + _varint(value) if value else b""


def _ranked_driver(placed: Placed[DriverMonth]) -> dict[str, Any]:
    return {
        **_unranked_driver(placed.entrant),
        "rank": placed.rank,
        "score": placed.score_hundredths / 100,
    }


def _unranked_driver(driver: DriverMonth) -> dict[str, Any]:
    profile = driver.profile
    return {
        "userId": profile.user_id,
        "firstname": profile.firstname,
        "lastname": profile.lastname,
        "pseudo": profile.pseudo,
        "distance": metres_to_km(driver.tally.metres),
        "tripNumber": driver.tally.trips,
    }


def month_page_response(
    kind: ev.ScoreKind, month: MonthBoard, page: Page[DriverMonth], next_page_token: str
) -> ranking_pb2.ListMonthRankingResponse:
    return ranking_pb2.ListMonthRankingResponse(
        type=RANKING_TYPES[kind],
        monthNumber=month.month.number,
        year=month.month.year,
        driverRankedNumber=len(month.board.standings.ranked),
        driverRanked=[_ranked_driver(p) for p in page.ranked],
        driverNotRanked=[_unranked_driver(d) for d in page.not_ranked],
        nextPageToken=next_page_token,
        frozen=month.frozen,
    )


def driver_rank_response(
    kind: ev.ScoreKind, month: MonthBoard, found: Around[DriverMonth]
) -> ranking_pb2.GetDriverRankResponse:
    message = ranking_pb2.GetDriverRankResponse(
        type=RANKING_TYPES[kind],
        monthNumber=month.month.number,
        year=month.month.year,
        driverRankedNumber=len(month.board.standings.ranked),
        above=[_ranked_driver(p) for p in found.above],
        below=[_ranked_driver(p) for p in found.below],
        frozen=month.frozen,
    )
    if found.placed is not None:
        message.driver.CopyFrom(ranking_pb2.RankedDriver(**_ranked_driver(found.placed)))
    else:
        message.driverNotRanked.CopyFrom(
            ranking_pb2.UnrankedDriver(**_unranked_driver(found.entrant))
        )
    if found.shortfall is not None:
        message.shortfall.CopyFrom(shortfall_message(found.shortfall))
    return message


def top_drivers_response(
    kind: ev.ScoreKind, month: MonthBoard, top: int
) -> ranking_pb2.WatchDriverRankingResponse:
    ranked = month.board.standings.ranked
    return ranking_pb2.WatchDriverRankingResponse(
        type=RANKING_TYPES[kind],
        monthNumber=month.month.number,
        year=month.month.year,
        driverRankedNumber=len(ranked),
        driverRanked=[_ranked_driver(p) for p in ranked[:top]],
    )


def shortfall_message(shortfall: Shortfall) -> common_pb2.Shortfall:
    return common_pb2.Shortfall(
        tripsShort=shortfall.trips_short,
        distanceShortKm=metres_to_km(shortfall.metres_short),
        noScore=shortfall.no_score,
    )


class Stamped(Protocol):
    """A response that says how current it is."""

    @property
    def asOf(self) -> timestamp_pb2.Timestamp: ...


S = TypeVar("S", bound=Stamped)


def stamped(message: S, as_of: datetime | None) -> S:
    """`message` with its `asOf` set (left unset when no event moved the state yet)."""
    if as_of is not None:
        message.asOf.CopyFrom(timestamp(as_of))
    return message


CURRENT_MONTH_FIELD = ranking_pb2.GetDriverRankingResponse.CURRENTMONTH_FIELD_NUMBER
PREVIOUS_MONTH_FIELD = ranking_pb2.GetDriverRankingResponse.PREVIOUSMONTH_FIELD_NUMBER


def driver_ranking_bytes(
    kind: ev.ScoreKind, current: bytes, previous: bytes, as_of: datetime | None
) -> bytes:
    """`GetDriverRankingResponse` from its two months already serialized: protobuf's wire
    format lets message fields be joined without parsing them again."""
    head = stamped(ranking_pb2.GetDriverRankingResponse(type=RANKING_TYPES[kind]), as_of)
    return b"".join(
        (
            head.SerializeToString(),
            length_delimited(CURRENT_MONTH_FIELD, current),
            length_delimited(PREVIOUS_MONTH_FIELD, previous),
        )
    )


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """A message field in protobuf's wire format."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


_SMALL_VARINTS = [bytes([n]) for n in range(0x80)]


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --- tasks -------------------------------------------------------------------------------------


def task_response(task: Task) -> tasks_pb2.GetTaskResponse:
    response = tasks_pb2.GetTaskResponse(
        taskId=task.task_id,
        createdAt=timestamp(task.created_at),
        type=TASK_TYPES[task.type],
        status=TASK_STATUSES[task.status],
        nbItems=task.nb_items,
        nbRemainingItems=task.nb_remaining_items,
    )
    if task.status is ev.TaskStatus.COMPLETED and task.completed_at is not None:
        response.completedAt.CopyFrom(timestamp(task.completed_at))
    return response


# --- challenges --------------------------------------------------------------------------------


def _profile(profiles: Mapping[str, Profile], user_id: str) -> Profile:
    return profiles.get(user_id, Profile(user_id))


def challenge_ranking_response(
    answer: ChallengeRanking, page: Page[Entry] | None = None, next_page_token: str = ""
) -> challenges_pb2.GetChallengeRankingResponse:
    """The whole ranking, or a `page` of it (the counters are the whole ranking's)."""
    challenge, standings, profiles = answer.challenge, answer.standings, answer.profiles
    ranked, not_ranked = (
        (standings.ranked, standings.not_ranked) if page is None else (page.ranked, page.not_ranked)
    )
    return challenges_pb2.GetChallengeRankingResponse(
        challengeId=challenge.challenge_id,
        group=answer.group,
        theme=CHALLENGE_THEMES[challenge.theme],
        startDate=timestamp(challenge.start_at),
        endDate=timestamp(challenge.end_at),
        registeredUsers=answer.registered,
        rankedUsers=len(standings.ranked),
        users=[_ranked_user(p, profiles) for p in ranked],
        usersNotRanked=[_unranked_user(e, profiles) for e in not_ranked],
        nextPageToken=next_page_token,
    )


def challenge_rank_response(
    board: ChallengeBoard, found: Around[Entry]
) -> challenges_pb2.GetChallengeRankResponse:
    answer = board.ranking
    challenge, profiles = answer.challenge, answer.profiles
    message = challenges_pb2.GetChallengeRankResponse(
        challengeId=challenge.challenge_id,
        group=answer.group,
        theme=CHALLENGE_THEMES[challenge.theme],
        registeredUsers=answer.registered,
        rankedUsers=len(answer.standings.ranked),
        above=[_ranked_user(p, profiles) for p in found.above],
        below=[_ranked_user(p, profiles) for p in found.below],
    )
    if found.placed is not None:
        message.user.CopyFrom(_ranked_user(found.placed, profiles))
    else:
        message.userNotRanked.CopyFrom(_unranked_user(found.entrant, profiles))
    if found.shortfall is not None:
        message.shortfall.CopyFrom(shortfall_message(found.shortfall))
    return message


def _ranked_user(
    placed: Placed[Entry], profiles: Mapping[str, Profile]
) -> challenges_pb2.ChallengeRankedUser:
    return challenges_pb2.ChallengeRankedUser(
        **_user_fields(placed.entrant, profiles),
        rank=placed.rank,
        score=placed.score_hundredths / 100,
    )


def _unranked_user(
    entry: Entry, profiles: Mapping[str, Profile]
) -> challenges_pb2.ChallengeUnrankedUser:
    return challenges_pb2.ChallengeUnrankedUser(**_user_fields(entry, profiles))


def _user_fields(entry: Entry, profiles: Mapping[str, Profile]) -> dict[str, Any]:
    who = _profile(profiles, entry.user_id)
    return {
        "username": entry.user_id,
        "firstname": who.firstname,
        "lastname": who.lastname,
        "pseudo": who.pseudo,
        "registerDate": timestamp(entry.registered_at),
        "numberTrips": entry.during.trips,
        "distance": metres_to_km(entry.during.metres),
    }


def challenge_progress_response(
    answer: ChallengeProgress,
    lines: Sequence[ProgressLine] | None = None,
    next_page_token: str = "",
) -> challenges_pb2.GetChallengeProgressResponse:
    """Every line, or a page of them, `lines` (the counters are the whole progress')."""
    progress = answer.progress

    def line(item: ProgressLine) -> challenges_pb2.UserRankedWithProgress:
        entry, who = item.entry, _profile(answer.profiles, item.entry.user_id)
        return challenges_pb2.UserRankedWithProgress(
            username=entry.user_id,
            firstname=who.firstname,
            lastname=who.lastname,
            registerDate=timestamp(entry.registered_at),
            numberTrips=entry.during.trips,
            distance=metres_to_km(entry.during.metres),
            rank=item.rank,
            score=item.score_hundredths / 100,
            scoreBefore=item.score_before_hundredths / 100,
            scoreEvolution=item.evolution_hundredths / 100,
        )

    return challenges_pb2.GetChallengeProgressResponse(
        challengeId=answer.challenge.challenge_id,
        group=answer.group,
        registeredUsers=progress.registered_users,
        rankedUsers=progress.ranked_users,
        usersWithDataBefore=progress.users_with_data_before,
        totalDistance=metres_to_km(progress.total_metres),
        totalNumberTrips=progress.total_trips,
        users=[line(item) for item in (progress.users if lines is None else lines)],
        nextPageToken=next_page_token,
    )


# --- path sessions -----------------------------------------------------------------------------


def path_stats_response(answer: PathStats) -> paths_pb2.GetPathSessionStatsResponse:
    response = paths_pb2.GetPathSessionStatsResponse(
        progress=answer.progress,
        globalTime=answer.global_time_ms,
        score=answer.score,
        status=PATH_STATUSES[answer.status],
        detailedStatus=paths_pb2.DetailedStatus(
            type=DETAILED_TYPES[answer.detailed_type],
            reason=_optional(
                DETAILED_REASONS,
                answer.detailed_reason,
                paths_pb2.DETAILED_STATUS_REASON_UNSPECIFIED,
            ),
        ),
        result=_optional(PATH_RESULTS, answer.result, paths_pb2.PATH_RESULT_UNSPECIFIED),
    )
    if answer.completed_at is not None:
        response.completedAt.CopyFrom(timestamp(answer.completed_at))
    if answer.archived_at is not None:
        response.archivedAt.CopyFrom(timestamp(answer.archived_at))
    return response
