"""Results out (docs/rules.md#results-out): what Podium publishes when a window freezes.

A month freezes for every ranking type at once and gives one result per type; a challenge
gives one. A result is built from the window's final standings with the groups each person
had when it froze, and is named by an id derived from the tenant, the window and the kind
of result alone: whichever instance notices the freeze, however often, the same result
carries the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.domain import challenges as ch
from service.domain.events import ChallengeTheme, ScoreKind
from service.domain.exact import ZERO, add, half_up
from service.domain.ranking import DriverMonth, Month
from service.domain.standings import Standings

RESULT_NAMESPACE = uuid.UUID("5d0c3a52-5b0e-4f8e-9a8e-2f3d6b1c7a10")
"""The namespace of results' event ids (UUID version 5): fixed forever, or ids change."""

MONTH_FROZEN = "month_frozen"
CHALLENGE_FROZEN = "challenge_frozen"

Groups = Mapping[str, tuple[str, ...]]
"""Each user's groups as the window froze with them (sorted); a user absent has none."""


@dataclass(frozen=True, slots=True, order=True)
class MonthWindow:
    """One month of one tenant, for one ranking type: one `MonthFrozen`."""

    tenant_id: str
    month: Month
    kind: ScoreKind

    @property
    def name(self) -> str:
        return f"{self.month.year:04d}-{self.month.number:02d}/{self.kind.name}"


@dataclass(frozen=True, slots=True, order=True)
class ChallengeWindow:
    """One challenge of one tenant: one `ChallengeFrozen`."""

    tenant_id: str
    challenge_id: str

    @property
    def name(self) -> str:
        return self.challenge_id


Window = MonthWindow | ChallengeWindow


def kind_of(window: Window) -> str:
    return MONTH_FROZEN if isinstance(window, MonthWindow) else CHALLENGE_FROZEN


def result_event_id(window: Window) -> str:
    """The event id of a window's result: the same for the same tenant, window and kind,
    wherever and however often it is computed. The parts are joined by a separator no id
    holds (ids are printable), so two windows never share an id."""
    parts = (window.tenant_id, kind_of(window), window.name)
    return str(uuid.uuid5(RESULT_NAMESPACE, "\x1f".join(parts)))


def is_frozen(freezes_at: datetime, seen: datetime) -> bool:
    """A window is frozen once `seen` (the newest arrival time folded for its tenant, or the
    clock, whichever is later) reaches its freeze."""
    return seen >= freezes_at


def frozen_months(
    tenant_id: str, months: Iterable[Month], seen: datetime, grace: timedelta
) -> list[MonthWindow]:
    """The windows of the months (of a tenant) frozen by `seen`: one per ranking type, in
    month then type order."""
    return [
        MonthWindow(tenant_id, month, kind)
        for month in sorted(set(months))
        if is_frozen(month.freezes_at(grace), seen)
        for kind in ScoreKind
    ]


@dataclass(frozen=True, slots=True)
class FrozenDriver:
    user_id: str
    rank: int
    """0: not ranked."""
    score_hundredths: int | None
    metres: int
    trips: int
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MonthResult:
    window: MonthWindow
    frozen_at: datetime
    ranked: tuple[FrozenDriver, ...]
    not_ranked: tuple[FrozenDriver, ...]


def month_result(
    window: MonthWindow, frozen_at: datetime, standings: Standings[DriverMonth], groups: Groups
) -> MonthResult:
    """The final standings of a month for the whole tenant: every ranked driver best first,
    then every other one as the ranking lists them."""

    def line(driver: DriverMonth, rank: int) -> FrozenDriver:
        user = driver.profile.user_id
        tally = driver.tally
        return FrozenDriver(
            user, rank, tally.score_hundredths, tally.metres, tally.trips, groups.get(user, ())
        )

    return MonthResult(
        window,
        frozen_at,
        tuple(line(p.entrant, p.rank) for p in standings.ranked),
        tuple(line(d, 0) for d in standings.not_ranked),
    )


@dataclass(frozen=True, slots=True)
class FrozenEntrant:
    user_id: str
    rank: int
    """0: not ranked."""
    score_hundredths: int | None
    """The theme's score, or for DISTANCE the kilometres, in hundredths."""
    metres: int
    trips: int
    registered_at: datetime
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FrozenProgress:
    user_id: str
    rank: int
    score_hundredths: int
    score_before_hundredths: int
    evolution_hundredths: int


@dataclass(frozen=True, slots=True)
class ChallengeResult:
    window: ChallengeWindow
    frozen_at: datetime
    challenge: ch.Challenge
    ranked: tuple[FrozenEntrant, ...]
    not_ranked: tuple[FrozenEntrant, ...]
    progress: tuple[FrozenProgress, ...]
    registered_users: int
    ranked_users: int
    users_with_data_before: int
    total_metres: int
    total_trips: int


def challenge_result(
    window: ChallengeWindow,
    challenge: ch.Challenge,
    frozen_at: datetime,
    entries: Sequence[ch.Entry],
    groups: Groups,
) -> ChallengeResult:
    """A challenge's final ranking of every registered user (the whole tenant, no group),
    its progress (none for a DISTANCE challenge: progress does not apply) and its counters."""

    def line(entry: ch.Entry, rank: int) -> FrozenEntrant:
        return FrozenEntrant(
            entry.user_id,
            rank,
            ch.score_hundredths(challenge, entry.during),
            entry.during.metres,
            entry.during.trips,
            entry.registered_at,
            groups.get(entry.user_id, ()),
        )

    standings = ch.rank_challenge(challenge, entries)
    if challenge.theme is ChallengeTheme.DISTANCE:
        progress: tuple[FrozenProgress, ...] = ()
        with_data_before = sum(ch.has_data_before(challenge, e) for e in entries)
        total_km = ZERO
        for entry in entries:
            total_km = add(total_km, entry.during.km)
        total_metres = half_up(total_km, 3)  # the exact sum, rounded once
        total_trips = sum(e.during.trips for e in entries)
    else:
        # Progress is available from the end, and a frozen challenge has ended.
        found = ch.progress(challenge, entries, max(frozen_at, challenge.end_at))
        progress = tuple(
            FrozenProgress(
                p.entry.user_id,
                p.rank,
                p.score_hundredths,
                p.score_before_hundredths,
                p.evolution_hundredths,
            )
            for p in found.users
        )
        with_data_before = found.users_with_data_before
        total_metres, total_trips = found.total_metres, found.total_trips
    return ChallengeResult(
        window,
        frozen_at,
        challenge,
        tuple(line(p.entrant, p.rank) for p in standings.ranked),
        tuple(line(e, 0) for e in standings.not_ranked),
        progress,
        registered_users=len(entries),
        ranked_users=len(standings.ranked),
        users_with_data_before=with_data_before,
        total_metres=total_metres,
        total_trips=total_trips,
    )


Result = MonthResult | ChallengeResult


def groups_of(members: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Each user's groups, sorted, from each group's members (as the window froze)."""
    groups: dict[str, set[str]] = {}
    for group, users in members.items():
        for user in users:
            groups.setdefault(user, set()).add(group)
    return {user: tuple(sorted(names)) for user, names in groups.items()}
