"""The read use cases: each checks the request against the state, reads what it needs from
the read model, and calls the rules (docs/rules.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.app.ports import ReadModel
from service.domain import challenges as ch
from service.domain.boards import Around, Board, LiveBoard, SortKey, around, board_of
from service.domain.errors import (
    InvalidGroupLabel,
    challenge_not_found,
    driver_not_found,
    path_session_not_found,
    task_not_found,
    user_not_enrolled,
    user_not_found,
    user_not_registered,
)
from service.domain.events import ChallengeTheme, ScoreKind
from service.domain.paths import PathStats, stats
from service.domain.ranking import DriverMonth, Month, Profile, drivers_of_month, rank_month
from service.domain.rules import Rules
from service.domain.standings import Standings
from service.domain.tasks import Task, task_of


@dataclass(frozen=True, slots=True)
class MonthRanking:
    month: Month
    standings: Standings[DriverMonth]


def ranking_months(now: datetime) -> tuple[Month, Month]:
    """The months a driver ranking answers for: the month of `now`, and the one before."""
    current = Month.of(now)
    return current, current.previous()


def membership_as_of(freezes_at: datetime, now: datetime) -> datetime | None:
    """A frozen window keeps the group membership it had when it froze (users first heard of
    later by their first profile); a live one follows today's (None)."""
    return freezes_at if now >= freezes_at else None


def group_profiles(
    read: ReadModel, tenant_id: str, group: str, as_of: datetime | None = None
) -> list[Profile]:
    """The drivers a ranking lists: the group's members, or every profile of the tenant; a
    frozen month lists its group's members as of its freeze (`as_of`), with today's names. A
    group is known once some profile listed it, and stays known after its members left."""
    people = read.profiles(tenant_id, group or None, as_of)
    if group and not people and group not in read.known_groups(tenant_id):
        raise InvalidGroupLabel(group)
    return people


def month_ranking(
    read: ReadModel,
    tenant_id: str,
    kind: ScoreKind,
    group: str,
    month: Month,
    rules: Rules,
    now: datetime,
    people: Sequence[Profile] | None = None,
) -> MonthRanking:
    """`people`: the month's profiles (`month_people`) when the caller already has them: they
    change far less often than the month's tallies."""
    as_of = membership_as_of(month.freezes_at(rules.late_event_grace), now)
    if people is None:
        people = group_profiles(read, tenant_id, group, as_of)
    tallies = read.month_tallies(tenant_id, month, kind, group or None, as_of)
    drivers = drivers_of_month(people, tallies)
    return MonthRanking(month, rank_month(drivers, rules.driver_thresholds))


@dataclass(frozen=True, slots=True)
class MonthBoard:
    """A month's ranking as a board (docs/rules.md#boards-pages-and-neighbours): built once
    per state version, then paged through and looked into without reading again."""

    month: Month
    frozen: bool
    board: Board[DriverMonth]
    kept: KeptMonth | None = field(default=None, compare=False)
    """The board kept up to date, from which the next one is made (`service.app.answers`),
    while its revision is still `revision`."""
    revision: int = field(default=0, compare=False)

    @property
    def ranking(self) -> MonthRanking:
        return MonthRanking(self.month, self.board.standings)


@dataclass(eq=False)
class KeptMonth:
    """A month's board as an API instance keeps it: its drivers in their sorted places, and
    the profiles it lists (a group's members, as of the freeze for a frozen month; every
    profile of the tenant without a group)."""

    live: LiveBoard[DriverMonth]
    profiles: dict[str, Profile]
    read_at: datetime
    """When it was last read whole (the `now` of the query that read it)."""


def month_board(
    read: ReadModel,
    tenant_id: str,
    kind: ScoreKind,
    group: str,
    month: Month,
    rules: Rules,
    now: datetime,
    people: Sequence[Profile] | None = None,
) -> MonthBoard:
    ranking = month_ranking(read, tenant_id, kind, group, month, rules, now, people)
    board = board_of(ranking.standings, lambda d: d.tally.metres, lambda d: d.profile.user_id)
    return MonthBoard(month, now >= month.freezes_at(rules.late_event_grace), board)


def driver_rank(
    month: MonthBoard, user_id: str, neighbors: int, rules: Rules
) -> Around[DriverMonth]:
    """A driver listed in the month's ranking (a profile of the group, or a driver with
    trips), with their ranked neighbours or why they are not ranked."""
    found = around(
        month.board,
        user_id,
        neighbors,
        tally_of=lambda d: d.tally,
        thresholds=rules.driver_thresholds,
        has_score=lambda d: d.tally.score_hundredths is not None,
    )
    if found is None:
        raise driver_not_found(user_id)
    return found


def get_task(read: ReadModel, tenant_id: str, task_id: str) -> Task:
    facts = read.task_facts(tenant_id, task_id) if task_id else None
    task = None
    if facts is not None and facts.creation is not None:
        task = task_of(facts, read.task_pauses(tenant_id, facts.creation.type))
    if task is None:
        raise task_not_found(task_id)
    return task


@dataclass(frozen=True, slots=True)
class ChallengeRanking:
    challenge: ch.Challenge
    group: str
    registered: int
    standings: Standings[ch.Entry]
    profiles: dict[str, Profile]


@dataclass(frozen=True, slots=True)
class ChallengeProgress:
    challenge: ch.Challenge
    group: str
    progress: ch.Progress
    profiles: dict[str, Profile]
    keys: tuple[SortKey, ...]
    """The sort keys of `progress.users`, in their order: a page is a binary search and a
    slice (docs/rules.md#boards-pages-and-neighbours)."""


def _challenge(read: ReadModel, tenant_id: str, challenge_id: str) -> ch.Challenge:
    challenge = read.challenge(tenant_id, challenge_id) if challenge_id else None
    if challenge is None:
        raise challenge_not_found(challenge_id)
    return challenge


def _entries(
    read: ReadModel,
    tenant_id: str,
    challenge: ch.Challenge,
    group: str,
    rules: Rules,
    now: datetime,
) -> list[tuple[ch.Entry, Profile]]:
    """A frozen challenge's group is its members as of the freeze; a group of an open
    challenge is one some profile listed."""
    frozen_at = challenge.freezes_at(rules.late_event_grace)
    as_of = membership_as_of(frozen_at, now)
    known = read.known_groups(tenant_id) if group and not challenge.groups else frozenset()
    ch.check_group(challenge, group, known)
    return read.challenge_entries(
        tenant_id, challenge.challenge_id, frozen_at, group or None, as_of
    )


def challenge_ranking(
    read: ReadModel, tenant_id: str, challenge_id: str, group: str, now: datetime, rules: Rules
) -> ChallengeRanking:
    challenge = _challenge(read, tenant_id, challenge_id)
    rows = _entries(read, tenant_id, challenge, group, rules, now)
    entries = [entry for entry, _ in rows]
    return ChallengeRanking(
        challenge,
        group,
        len(entries),
        ch.rank_challenge(challenge, entries),
        {p.user_id: p for _, p in rows},
    )


@dataclass(frozen=True, slots=True)
class ChallengeBoard:
    ranking: ChallengeRanking
    board: Board[ch.Entry]


def challenge_board(
    read: ReadModel, tenant_id: str, challenge_id: str, group: str, now: datetime, rules: Rules
) -> ChallengeBoard:
    ranking = challenge_ranking(read, tenant_id, challenge_id, group, now, rules)
    return ChallengeBoard(ranking, board_of(ranking.standings, _metres, _user))


def challenge_rank(board: ChallengeBoard, user_id: str, neighbors: int) -> Around[ch.Entry]:
    """A user registered in the challenge (and its group, when one is asked for), with their
    ranked neighbours or why they are not ranked."""
    challenge = board.ranking.challenge
    found = around(
        board.board,
        user_id,
        neighbors,
        tally_of=lambda e: e.during,
        thresholds=challenge.thresholds,
        has_score=lambda e: ch.score_hundredths(challenge, e.during) is not None,
    )
    if found is None:
        raise user_not_registered(user_id, challenge.challenge_id)
    return found


def _metres(entry: ch.Entry) -> int:
    return entry.during.metres


def _user(entry: ch.Entry) -> str:
    return entry.user_id


def challenge_progress(
    read: ReadModel, tenant_id: str, challenge_id: str, group: str, now: datetime, rules: Rules
) -> ChallengeProgress:
    """Errors come in this order: not found, not applicable, invalid group, not available."""
    challenge = _challenge(read, tenant_id, challenge_id)
    if challenge.theme is ChallengeTheme.DISTANCE:
        ch.check_progress_available(challenge, now)
    rows = _entries(read, tenant_id, challenge, group, rules, now)
    entries = [entry for entry, _ in rows]
    progress = ch.progress(challenge, entries, now)
    return ChallengeProgress(
        challenge,
        group,
        progress,
        {p.user_id: p for _, p in rows},
        tuple(line.key for line in progress.users),
    )


def path_session_stats(
    read: ReadModel, tenant_id: str, session_id: str, user_email_or_id: str, now: datetime
) -> PathStats:
    """path_session_not_found wins over user_not_found, which wins over user_not_enrolled."""
    session = read.path_session(tenant_id, session_id) if session_id else None
    if session is None:
        raise path_session_not_found(session_id)
    user_id = read.resolve_user(tenant_id, user_email_or_id) if user_email_or_id else None
    if user_id is None:
        raise user_not_found(user_email_or_id)
    state = read.learner_state(tenant_id, session_id, user_id)
    if state is None:
        raise user_not_enrolled(user_email_or_id, session_id)
    return stats(session, state, now)
