"""Challenges (docs/rules.md#challenges): windows, tallies, live ranking and progress.

Per registration Podium keeps two tallies: trips during the challenge (from the later of its
start and the registration, to its end) and trips of the pre-challenge window. Storage adds a
trip's `contribution` as it arrives and takes it away on deletion; `entry_from_trips` computes
the same tallies from all trips at once, for a registration or a (re-)publication.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from service.domain.boards import SortKey
from service.domain.errors import InvalidGroupLabel, NotApplicableForChallenge, ProgressNotAvailable
from service.domain.events import ChallengePublished, ChallengeTheme
from service.domain.exact import ZERO, add, exact, half_up
from service.domain.standings import EMPTY_TALLY, Standings, Tally, Thresholds, rank_entrants
from service.domain.trips import TripFacts, counted_tally


@dataclass(frozen=True, slots=True)
class Challenge:
    challenge_id: str
    title: str
    theme: ChallengeTheme
    start_at: datetime
    end_at: datetime
    groups: tuple[str, ...]
    min_trips: int
    min_km: Decimal
    pre_period: timedelta
    pre_min_trips: int

    @classmethod
    def from_event(cls, e: ChallengePublished) -> Challenge:
        return cls(
            challenge_id=e.challenge_id,
            title=e.title,
            theme=e.theme,
            start_at=e.start_at,
            end_at=e.end_at,
            groups=tuple(sorted(set(e.groups))),
            min_trips=e.min_trips,
            min_km=exact(e.min_distance_km),
            pre_period=(
                e.end_at - e.start_at if e.pre_challenge_period is None else e.pre_challenge_period
            ),
            pre_min_trips=e.pre_challenge_min_trips,
        )

    @property
    def pre_start(self) -> datetime:
        return self.start_at - self.pre_period

    def freezes_at(self, grace: timedelta) -> datetime:
        """Events arriving from this moment on change nothing in the challenge."""
        return self.end_at + grace

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.min_trips, self.min_km)


@dataclass(frozen=True, slots=True)
class Entry:
    """A registered user's tallies during the challenge and before it."""

    user_id: str
    registered_at: datetime
    during: Tally = EMPTY_TALLY
    before: Tally = EMPTY_TALLY


def first_registration(
    registrations: Iterable[tuple[datetime, datetime]], freezes_at: datetime
) -> tuple[datetime, datetime] | None:
    """Of a user's registrations to a challenge, (registered_at, arrived_at) each, the one
    that counts: the earliest registered among those that arrived before the challenge froze
    (ties: the earliest arrived). None when all came too late."""
    in_time = [r for r in registrations if r[1] < freezes_at]
    return min(in_time) if in_time else None


def contribution(
    challenge: Challenge, registered_at: datetime, trip: TripFacts, grace: timedelta
) -> tuple[Tally, Tally]:
    """What one trip adds to a registration: (during, before)."""
    tally = counted_tally(trip, challenge.theme.score_kind, challenge.freezes_at(grace))
    if tally.is_empty:
        return EMPTY_TALLY, EMPTY_TALLY
    during_from = max(challenge.start_at, registered_at)
    if during_from <= trip.ended_at < challenge.end_at:
        return tally, EMPTY_TALLY
    if challenge.pre_start <= trip.ended_at < challenge.start_at:
        return EMPTY_TALLY, tally
    return EMPTY_TALLY, EMPTY_TALLY


def entry_from_trips(
    challenge: Challenge,
    user_id: str,
    registered_at: datetime,
    trips: Iterable[TripFacts],
    grace: timedelta,
) -> Entry:
    """The recomputation: a registration's tallies from all the user's trips."""
    during, before = EMPTY_TALLY, EMPTY_TALLY
    for trip in trips:
        if trip.user_id == user_id:
            added_during, added_before = contribution(challenge, registered_at, trip, grace)
            during, before = during + added_during, before + added_before
    return Entry(user_id, registered_at, during, before)


def score_hundredths(challenge: Challenge, tally: Tally) -> int | None:
    """The theme's distance-weighted mean score; for DISTANCE, the kilometres driven (both in
    hundredths, rounded half up once, from the exact figures)."""
    if challenge.theme is ChallengeTheme.DISTANCE:
        return half_up(tally.km, 2) if tally.trips else None
    return tally.score_hundredths


def has_data_before(challenge: Challenge, entry: Entry) -> bool:
    """Enough trips in the pre-challenge window, and a score there, to measure progress."""
    before = entry.before
    return (
        before.trips >= challenge.pre_min_trips and score_hundredths(challenge, before) is not None
    )


def rank_challenge(challenge: Challenge, entries: Iterable[Entry]) -> Standings[Entry]:
    thresholds = challenge.thresholds
    return rank_entrants(
        entries,
        score_of=lambda e: score_hundredths(challenge, e.during),
        metres_of=lambda e: e.during.metres,
        key_of=lambda e: e.user_id,
        is_eligible=lambda e: thresholds.admits(e.during),
    )


def check_group(challenge: Challenge, group: str, known_groups: frozenset[str]) -> None:
    """A group must be one of the challenge's groups, or, for a challenge open to the whole
    tenant, a group known in the tenant."""
    if not group:
        return
    allowed = set(challenge.groups) if challenge.groups else known_groups
    if group not in allowed:
        raise InvalidGroupLabel(group, field="group")


PROGRESS_KEY_LENGTH = 3
"""A progress line's sort key: (-evolution, -score, user id), hundredths (`ProgressLine.key`)."""


@dataclass(frozen=True, slots=True)
class ProgressLine:
    entry: Entry
    rank: int
    score_hundredths: int
    score_before_hundredths: int

    @property
    def evolution_hundredths(self) -> int:
        return self.score_hundredths - self.score_before_hundredths

    @property
    def key(self) -> SortKey:
        """Where the line stands in progress order: best evolution first, then best score,
        then user id, a total order. A better score is a better rank (ranks follow the score
        alone, ties sharing one), so this is "then rank" too, but of the line's own figures:
        a page's cut moves only with them (docs/rules.md#challenge-progress)."""
        return (-self.evolution_hundredths, -self.score_hundredths, self.entry.user_id)


@dataclass(frozen=True, slots=True)
class Progress:
    registered_users: int
    ranked_users: int
    users_with_data_before: int
    total_metres: int
    total_trips: int
    users: tuple[ProgressLine, ...]


def check_progress_available(challenge: Challenge, now: datetime) -> None:
    if challenge.theme is ChallengeTheme.DISTANCE:
        raise NotApplicableForChallenge()
    if now < challenge.end_at:
        raise ProgressNotAvailable(challenge.end_at, now)


def progress(challenge: Challenge, entries: Sequence[Entry], now: datetime) -> Progress:
    """Users ranked and with enough data before, best evolution first (ties: score, which is
    rank, then user)."""
    check_progress_available(challenge, now)
    standings = rank_challenge(challenge, entries)
    lines = [
        ProgressLine(placed.entrant, placed.rank, placed.score_hundredths, before)
        for placed in standings.ranked
        if has_data_before(challenge, placed.entrant)
        and (before := score_hundredths(challenge, placed.entrant.before)) is not None
    ]
    lines.sort(key=lambda line: line.key)
    return Progress(
        registered_users=len(entries),
        ranked_users=len(standings.ranked),
        users_with_data_before=sum(has_data_before(challenge, e) for e in entries),
        total_metres=half_up(_total_km(entries), 3),
        total_trips=sum(e.during.trips for e in entries),
        users=tuple(lines),
    )


def _total_km(entries: Sequence[Entry]) -> Decimal:
    """The distance of every entry, exactly (rounded once, by the caller)."""
    total = ZERO
    for entry in entries:
        total = add(total, entry.during.km)
    return total
