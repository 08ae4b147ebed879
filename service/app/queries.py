"""The read use cases: each checks the request, reads its tables, and calls the rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from service.adapters import views
from service.adapters.stores.paths import learner_state
from service.domain import challenges as ch
from service.domain.errors import (
    InvalidGroupLabel,
    InvalidRankType,
    challenge_not_found,
    path_session_not_found,
    task_not_found,
    user_not_enrolled,
    user_not_found,
)
from service.domain.events import ChallengeTheme, ScoreKind
from service.domain.paths import PathStats, stats
from service.domain.ranking import DriverMonth, Month, Profile, drivers_of_month, rank_month
from service.domain.rules import Rules
from service.domain.standings import Standings
from service.domain.tasks import Task


@dataclass(frozen=True, slots=True)
class MonthRanking:
    month: Month
    standings: Standings[DriverMonth]


@dataclass(frozen=True, slots=True)
class DriverRanking:
    kind: ScoreKind
    current: MonthRanking
    previous: MonthRanking


def ranking_type(kind_value: int) -> ScoreKind:
    try:
        return ScoreKind(kind_value)
    except ValueError:
        raise InvalidRankType() from None


def group_profiles(c: Connection, tenant_id: str, group: str) -> list[Profile]:
    """The drivers a ranking lists: the group's members, or every profile of the tenant. A
    group is known when a current profile lists it, so a group without members is unknown."""
    people = views.profiles(c, tenant_id, group or None)
    if group and not people:
        raise InvalidGroupLabel(group)
    return people


def month_ranking(
    c: Connection,
    tenant_id: str,
    kind_value: int,
    group: str,
    month: Month,
    rules: Rules,
    people: Sequence[Profile] | None = None,
) -> MonthRanking:
    """`people`: the group's profiles when the caller already has them (they change far less
    often than the month's tallies)."""
    kind = ranking_type(kind_value)
    if people is None:
        people = group_profiles(c, tenant_id, group)
    tallies = views.month_tallies(c, tenant_id, month, kind, group or None)
    drivers = drivers_of_month(people, tallies)
    return MonthRanking(month, rank_month(drivers, rules.driver_thresholds))


def driver_ranking(
    c: Connection, tenant_id: str, kind_value: int, group: str, now: datetime, rules: Rules
) -> DriverRanking:
    """The current month (of `now`) and the previous one."""
    current = Month.of(now)
    return DriverRanking(
        ranking_type(kind_value),
        month_ranking(c, tenant_id, kind_value, group, current, rules),
        month_ranking(c, tenant_id, kind_value, group, current.previous(), rules),
    )


def get_task(c: Connection, tenant_id: str, task_id: str) -> Task:
    found = views.task(c, tenant_id, task_id) if task_id else None
    if found is None:
        raise task_not_found(task_id)
    return found


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


def _challenge_and_entries(
    c: Connection, tenant_id: str, challenge_id: str, group: str, rules: Rules
) -> tuple[ch.Challenge, list[tuple[ch.Entry, Profile]]]:
    challenge = views.challenge(c, tenant_id, challenge_id) if challenge_id else None
    if challenge is None:
        raise challenge_not_found(challenge_id)
    ch.check_group(challenge, group, views.known_groups(c, tenant_id) if group else frozenset())
    frozen_at = challenge.freezes_at(rules.late_event_grace)
    return challenge, views.challenge_entries(c, tenant_id, challenge_id, frozen_at, group or None)


def challenge_ranking(
    c: Connection, tenant_id: str, challenge_id: str, group: str, rules: Rules
) -> ChallengeRanking:
    challenge, rows = _challenge_and_entries(c, tenant_id, challenge_id, group, rules)
    entries = [entry for entry, _ in rows]
    return ChallengeRanking(
        challenge,
        group,
        len(entries),
        ch.rank_challenge(challenge, entries),
        {p.user_id: p for _, p in rows},
    )


def challenge_progress(
    c: Connection, tenant_id: str, challenge_id: str, group: str, now: datetime, rules: Rules
) -> ChallengeProgress:
    challenge = views.challenge(c, tenant_id, challenge_id) if challenge_id else None
    if challenge is None:
        raise challenge_not_found(challenge_id)
    if challenge.theme is ChallengeTheme.DISTANCE:  # never applicable: say so first
        ch.check_progress_available(challenge, now)
    challenge, rows = _challenge_and_entries(c, tenant_id, challenge_id, group, rules)
    entries = [entry for entry, _ in rows]
    return ChallengeProgress(
        challenge, group, ch.progress(challenge, entries, now), {p.user_id: p for _, p in rows}
    )


def path_session_stats(
    c: Connection, tenant_id: str, session_id: str, user_email_or_id: str, now: datetime
) -> PathStats:
    """path_session_not_found wins over user_not_found, which wins over user_not_enrolled."""
    session = views.path_session(c, tenant_id, session_id) if session_id else None
    if session is None:
        raise path_session_not_found(session_id)
    user_id = views.resolve_user(c, tenant_id, user_email_or_id) if user_email_or_id else None
    if user_id is None:
        raise user_not_found(user_email_or_id)
    state = learner_state(c, tenant_id, session_id, user_id)
    if state is None:
        raise user_not_enrolled(user_email_or_id, session_id)
    return stats(session, state, now)
