"""Answers declared as queries: each names the answer it gives (`key`), the parts of the state
it reflects (`reflects`: state version keys, `service.app.state_versions`) and reads it from
the read model (`load`), deciding itself which membership a frozen window keeps
(docs/rules.md#arrival-time-and-freezes) and which profiles it reuses.

Whoever caches answers keys each value by the versions of what it reflects and opens the read
model for `load`. A month's board is kept rather than read again: `update` applies to a kept
board the driver months changed since the versions it reflects, re-ranking only the drivers
that moved, and answers exactly what `load` would (a property test holds them together).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Generic, TypeVar

from service.app import queries
from service.app.ports import ReadModel
from service.app.queries import (
    ChallengeBoard,
    ChallengeProgress,
    KeptMonth,
    MonthBoard,
    group_profiles,
    membership_as_of,
)
from service.app.state_versions import month_key, profiles_key, shards_of, tenant_key
from service.domain.boards import LiveBoard
from service.domain.events import ScoreKind
from service.domain.paths import PathStats
from service.domain.ranking import DriverMonth, Month, Profile, drivers_of_month
from service.domain.rules import Rules
from service.domain.standings import EMPTY_TALLY, Tally
from service.domain.tasks import Task

V = TypeVar("V")

Key = tuple[Hashable, ...]
"""An answer's name: by convention its kind (a short name) first, then what it is of."""

SMALL_ANSWER_BYTES = 4_096
"""What a value of a small answer (a task, a path's stats) is reckoned to hold in memory."""

BYTES_PER_DRIVER = 1_500
"""What a kept month's board holds in memory per driver, its serialized entries included
(`python -m bench.board_memory` measures it; bench/RESULTS.md)."""


READ_WHOLE_EVERY = timedelta(minutes=1)
"""A kept board is read whole again at least this often: during a rollout from a release
before migration 0012, older consumers change driver months without stamping them, and a
kept board would not see those changes (README, "Upgrades")."""

KEPT_FROM_DRIVERS = 1_000
"""A smaller board is read anew rather than updated: its read follows its own size, where the
changes since follow the whole tenant's month (a group's board reads them all, then keeps its
members')."""


class Query(Generic[V]):
    """An answer's read: what it is (`key`), what it reflects (`reflects`) and how it is read
    (`load`); `update` makes it from a value kept since (None: read it anew)."""

    @property
    def key(self) -> Key:
        raise NotImplementedError

    @property
    def reflects(self) -> tuple[str, ...]:
        raise NotImplementedError

    def load(self, read: ReadModel) -> V:
        raise NotImplementedError

    def update(
        self, read: ReadModel, kept: V, was: Mapping[str, int], now: Mapping[str, int]
    ) -> V | None:
        """The value from `kept`, which reflected the versions `was`, now that they are
        `now` (both read in their read model's snapshot); None: `load` it anew."""
        return None

    def size(self, value: V) -> int:
        """About what `value` holds in memory, in bytes (for a cache's budget)."""
        return SMALL_ANSWER_BYTES


# --- driver rankings ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthBoardQuery(Query[MonthBoard]):
    """A month's board for one ranking type and group ("" for the whole tenant)."""

    tenant_id: str
    kind: ScoreKind
    group: str
    month: Month
    rules: Rules
    now: datetime
    kept_from: int = KEPT_FROM_DRIVERS
    """The fewest drivers a board lists to be updated rather than read anew."""

    @property
    def membership(self) -> datetime | None:
        """A frozen month lists its group as of its freeze; a live one today's (None)."""
        return membership_as_of(self.month.freezes_at(self.rules.late_event_grace), self.now)

    @property
    def key(self) -> Key:
        t, kind, group, month = self.tenant_id, self.kind, self.group, self.month
        return ("month_board", t, kind, group, month, self.membership)

    @property
    def reflects(self) -> tuple[str, ...]:
        return (profiles_key(self.tenant_id), month_key(self.tenant_id, self.month))

    def load(self, read: ReadModel) -> MonthBoard:
        tenant, membership = self.tenant_id, self.membership
        people = group_profiles(read, tenant, self.group, membership)
        group = self.group or None
        tallies = read.month_tallies(tenant, self.month, self.kind, group, membership)
        thresholds = self.rules.driver_thresholds
        live = LiveBoard(
            drivers_of_month(people, tallies),
            score_of=_score,
            metres_of=_metres,
            key_of=_user,
            is_eligible=lambda d: thresholds.admits(d.tally),
        )
        return self._board(KeptMonth(live, {p.user_id: p for p in people}, self.now))

    def update(
        self, read: ReadModel, kept: MonthBoard, was: Mapping[str, int], now: Mapping[str, int]
    ) -> MonthBoard | None:
        """Profiles change seldom: when they did, the board is read anew; else the driver
        months changed since are applied (a group's board skipping the tenant's other
        drivers), shard by shard of the month's version (`service.app.shards`): writers of
        different shards commit in any order, each shard's in the order of its versions."""
        held, profiles = kept.kept, profiles_key(self.tenant_id)
        if held is None or held.live.revision != kept.revision:
            return None  # another board was made from it since: it is not this one's any more
        if len(held.live) < self.kept_from or self.now - held.read_at >= READ_WHOLE_EVERY:
            return None
        if was.get(profiles, 0) != now.get(profiles, 0):
            return None
        key = month_key(self.tenant_id, self.month)
        remembered = shards_of(was, key)
        since = {shard: remembered.get(shard, 0) for shard in shards_of(now, key)}
        changes = read.month_changes(self.tenant_id, self.month, self.kind, since)
        for user, tally in sorted(changes.items()):
            _apply(held, user, tally, whole_tenant=not self.group)
        return self._board(held)

    def size(self, value: MonthBoard) -> int:
        return SMALL_ANSWER_BYTES + BYTES_PER_DRIVER * len(value.board.where)

    def _board(self, kept: KeptMonth) -> MonthBoard:
        frozen = self.now >= self.month.freezes_at(self.rules.late_event_grace)
        return MonthBoard(self.month, frozen, kept.live.board(), kept, kept.live.revision)


def _apply(kept: KeptMonth, user: str, tally: Tally | None, *, whole_tenant: bool) -> None:
    """One driver month changed (None: its trips are all gone): a driver with a profile stays
    listed, with no trips if need be; one without is listed while they have trips, and only
    on the whole tenant's board (a group lists its members)."""
    profile = kept.profiles.get(user)
    if profile is not None:
        kept.live.put(DriverMonth(profile, tally or EMPTY_TALLY))
    elif not whole_tenant:
        return
    elif tally is None:
        kept.live.remove(user)
    else:
        kept.live.put(DriverMonth(Profile(user), tally))


def _score(driver: DriverMonth) -> int | None:
    return driver.tally.score_hundredths


def _metres(driver: DriverMonth) -> int:
    return driver.tally.metres


def _user(driver: DriverMonth) -> str:
    return driver.profile.user_id


@dataclass(frozen=True, slots=True)
class DriverRanking:
    """GetDriverRanking: the boards of the current month and the one before."""

    months: tuple[MonthBoardQuery, MonthBoardQuery]


def driver_ranking(
    tenant_id: str, kind: ScoreKind, group: str, rules: Rules, now: datetime
) -> DriverRanking:
    current, previous = queries.ranking_months(now)
    return DriverRanking(
        (
            MonthBoardQuery(tenant_id, kind, group, current, rules, now),
            MonthBoardQuery(tenant_id, kind, group, previous, rules, now),
        )
    )


# --- challenges --------------------------------------------------------------------------------


def _minute(now: datetime) -> int:
    """A challenge's groups are read as of its freeze once it froze: its answers are read
    again at least once a minute, so the freeze shows within a minute even if nothing else
    changes."""
    return int(now.timestamp()) // 60


@dataclass(frozen=True, slots=True)
class _OfChallenge(Query[V]):
    """A challenge's answer for a group (every registered user: ""), as of the minute."""

    kind: ClassVar[str]
    tenant_id: str
    challenge_id: str
    group: str
    rules: Rules
    now: datetime

    @property
    def key(self) -> Key:
        return (self.kind, self.tenant_id, self.challenge_id, self.group, _minute(self.now))

    @property
    def reflects(self) -> tuple[str, ...]:
        return (tenant_key(self.tenant_id),)


@dataclass(frozen=True, slots=True)
class ChallengeBoardQuery(_OfChallenge[ChallengeBoard]):
    kind: ClassVar[str] = "challenge_board"

    def load(self, read: ReadModel) -> ChallengeBoard:
        t, challenge, group = self.tenant_id, self.challenge_id, self.group
        return queries.challenge_board(read, t, challenge, group, self.now, self.rules)

    def size(self, value: ChallengeBoard) -> int:
        return SMALL_ANSWER_BYTES + BYTES_PER_DRIVER * len(value.board.where)


@dataclass(frozen=True, slots=True)
class ChallengeProgressQuery(_OfChallenge[ChallengeProgress]):
    """Progress exists only once the challenge has ended."""

    kind: ClassVar[str] = "challenge_progress"

    def load(self, read: ReadModel) -> ChallengeProgress:
        t, challenge, group = self.tenant_id, self.challenge_id, self.group
        return queries.challenge_progress(read, t, challenge, group, self.now, self.rules)

    def size(self, value: ChallengeProgress) -> int:
        return SMALL_ANSWER_BYTES + BYTES_PER_DRIVER * len(value.progress.users)


# --- tasks and paths ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskQuery(Query[Task]):
    tenant_id: str
    task_id: str

    @property
    def key(self) -> Key:
        return ("task", self.tenant_id, self.task_id)

    @property
    def reflects(self) -> tuple[str, ...]:
        return (tenant_key(self.tenant_id),)

    def load(self, read: ReadModel) -> Task:
        return queries.get_task(read, self.tenant_id, self.task_id)


@dataclass(frozen=True, slots=True)
class PathStatsQuery(Query[PathStats]):
    """Due dates and the session's start and end make the answer depend on the time too: it
    holds for the current second only."""

    tenant_id: str
    session_id: str
    user_email_or_id: str
    now: datetime

    @property
    def key(self) -> Key:
        second = int(self.now.timestamp())
        return ("path_stats", self.tenant_id, self.session_id, self.user_email_or_id, second)

    @property
    def reflects(self) -> tuple[str, ...]:
        return (tenant_key(self.tenant_id),)

    def load(self, read: ReadModel) -> PathStats:
        t, session, user = self.tenant_id, self.session_id, self.user_email_or_id
        return queries.path_session_stats(read, t, session, user, self.now)
