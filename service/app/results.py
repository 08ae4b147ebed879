"""Results out (docs/rules.md#results-out): notice the windows that froze, write each one's
result to the outbox in the transaction that read it, and mark results sent once the broker
acknowledged them.

A window is frozen for its tenant once the newest arrival time folded for that tenant, or
the clock, whichever is later, reaches its freeze: freezes are noticed by arrival time as the
rules decide them, and by the clock when no event arrives. The outbox keeps one row per
result, by an event id that the tenant, the window and the kind derive, so a freeze noticed
again (another instance, a restart, a replay of the log) adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from service.app.ports import OutboxEntry, ReadModel, ResultsWork
from service.app.state_versions import month_of_key, tenant_of_key
from service.domain import results as rs
from service.domain.ranking import Month, drivers_of_month, rank_month
from service.domain.rules import Rules

WINDOWS_PER_TRANSACTION = 1
"""Results built in one transaction at most. One: a transaction that writes holds the
tenant's lock on PostgreSQL, the write lock on SQLite, and a result of 10,000 drivers takes
about half a second to build (bench/RESULTS.md, "Results out")."""

Encode = Callable[[rs.Result], bytes]
"""A result as the binary `ResultEvent` it goes out as."""


def record_results(
    work: Callable[[], ResultsWork],
    rules: Rules,
    now: datetime,
    encode: Encode,
    *,
    limit: int = WINDOWS_PER_TRANSACTION,
) -> list[str]:
    """Write the results of up to `limit` frozen windows that are not in the outbox yet, in
    one transaction; returns their event ids (none: every frozen window has its result)."""
    with work() as uow:
        due = _due_windows(uow.read, rules, now)
        recorded = uow.results.recorded(rs.result_event_id(w) for w in due)
        todo = [w for w in due if rs.result_event_id(w) not in recorded][:limit]
        if not todo:
            return []
        uow.lock_tenants({w.tenant_id for w in todo})
        # Another instance may have recorded them while this one waited for the lock (every
        # consuming instance looks for freezes): not built again, which would hold the
        # tenants' batches for nothing.
        again = uow.results.recorded(rs.result_event_id(w) for w in todo)
        todo = [w for w in todo if rs.result_event_id(w) not in again]
        if not todo:
            return []
        groups = GroupsAt(uow.read)
        entries = [_entry(uow.read, window, rules, encode, groups) for window in todo]
        uow.results.add(entries, now)
        uow.commit()
    return [entry.event_id for entry in entries]


def record_all_results(
    work: Callable[[], ResultsWork], rules: Rules, now: datetime, encode: Encode
) -> int:
    """Record every frozen window's result, a few per transaction; returns how many."""
    total = 0
    while recorded := record_results(work, rules, now, encode):
        total += len(recorded)
    return total


def due_results(read: ReadModel, rules: Rules, now: datetime) -> set[str]:
    """The event ids of every window frozen by `now`, recorded or not: read in a read-only
    transaction, they tell whether there is anything to record before taking the write
    lock (SQLite takes it at a write transaction's start)."""
    return {rs.result_event_id(w) for w in _due_windows(read, rules, now)}


def unsent_results(work: Callable[[], ResultsWork], limit: int) -> list[OutboxEntry]:
    with work() as uow:
        return uow.results.unsent(limit)


def mark_sent(work: Callable[[], ResultsWork], ids: Iterable[int], now: datetime) -> None:
    """Only once the broker acknowledged them: a result not marked goes out again, under the
    same event id."""
    with work() as uow:
        uow.results.mark_sent(ids, now)
        uow.commit()


def _due_windows(read: ReadModel, rules: Rules, now: datetime) -> list[rs.Window]:
    """Every window frozen by now: the months that hold trips (a state version names each)
    and the published challenges, each frozen by its tenant's newest arrival or the clock."""
    grace = rules.late_event_grace
    versions = read.state_versions()
    seen: dict[str, datetime] = {}
    months: dict[str, list[Month]] = {}
    for key, version in versions.items():
        if (tenant := tenant_of_key(key)) is not None:
            arrived = version.as_of
            seen[tenant] = now if arrived is None else max(now, arrived)
        elif (named := month_of_key(key)) is not None:
            months.setdefault(named[0], []).append(named[1])
    windows: list[rs.Window] = []
    for tenant in sorted(months):
        windows += rs.frozen_months(tenant, months[tenant], seen.get(tenant, now), grace)
    newest = max([now, *seen.values()])
    for tenant, challenge_id, end_at in read.challenges_ended(newest - grace):
        if rs.is_frozen(end_at + grace, seen.get(tenant, now)):
            windows.append(rs.ChallengeWindow(tenant, challenge_id))
    return windows


def _entry(
    read: ReadModel, window: rs.Window, rules: Rules, encode: Encode, groups: GroupsAt
) -> OutboxEntry:
    result = _result(read, window, rules, groups)
    return OutboxEntry(
        event_id=rs.result_event_id(window),
        tenant_id=window.tenant_id,
        kind=rs.kind_of(window),
        window=window.name,
        occurred_at=result.frozen_at,
        payload=encode(result),
    )


def _result(read: ReadModel, window: rs.Window, rules: Rules, groups_at: GroupsAt) -> rs.Result:
    """The window's final standings as the rules answer them once it froze: the whole
    tenant, each person in the groups they had at the freeze."""
    grace = rules.late_event_grace
    tenant = window.tenant_id
    if isinstance(window, rs.MonthWindow):
        frozen_at = window.month.freezes_at(grace)
        people = read.profiles(tenant, None, frozen_at)
        tallies = read.month_tallies(tenant, window.month, window.kind, None, frozen_at)
        standings = rank_month(drivers_of_month(people, tallies), rules.driver_thresholds)
        return rs.month_result(window, frozen_at, standings, groups_at(tenant, frozen_at))
    challenge = read.challenge(tenant, window.challenge_id)
    if challenge is None:  # listed as published by the same transaction a moment ago
        raise LookupError(f"challenge {window.challenge_id!r} of {tenant!r} vanished")
    frozen_at = challenge.freezes_at(grace)
    rows = read.challenge_entries(tenant, challenge.challenge_id, frozen_at, None, frozen_at)
    entries = [entry for entry, _ in rows]
    groups = groups_at(tenant, frozen_at)
    return rs.challenge_result(window, challenge, frozen_at, entries, groups)


class GroupsAt:
    """Each user's groups as a window froze, read once per tenant and freeze within a
    transaction (the results it builds share them)."""

    def __init__(self, read: ReadModel) -> None:
        self._read = read
        self._found: dict[tuple[str, datetime], dict[str, tuple[str, ...]]] = {}

    def __call__(self, tenant: str, frozen_at: datetime) -> dict[str, tuple[str, ...]]:
        key = (tenant, frozen_at)
        if key not in self._found:
            read = self._read
            members = {
                group: [p.user_id for p in read.profiles(tenant, group, frozen_at)]
                for group in sorted(read.known_groups(tenant))
            }
            self._found[key] = rs.groups_of(members)
        return self._found[key]
