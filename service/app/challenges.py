"""Fold challenge events: publications and registrations recompute the registrations they
touch from the stored trips; trip changes add their contribution to existing registrations."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from service.app.ports import EntryKey, UnitOfWork
from service.app.records import Received, version_of
from service.app.trips import TripChange
from service.domain import events as ev
from service.domain.challenges import Challenge, Entry, contribution, entry_from_trips
from service.domain.rules import Rules
from service.domain.standings import EMPTY_TALLY, Tally
from service.domain.trips import StoredTrip, TripFacts
from service.domain.versions import newest, replacing


def fold_publications(uow: UnitOfWork, items: Sequence[Received], rules: Rules) -> None:
    """Replace each challenge by its newest publication (by occurred_at, then event_id) and
    recompute its registrations. A publication arriving once the stored challenge froze
    changes nothing."""
    published = [i for i in items if isinstance(i.event.payload, ev.ChallengePublished)]
    stored = uow.challenges.load({(i.event.meta.tenant_id, _challenge_id(i)) for i in published})
    frozen_at = {key: c.freezes_at(rules.late_event_grace) for key, (c, _) in stored.items()}

    def in_time(item: Received) -> bool:
        key = (item.event.meta.tenant_id, _challenge_id(item))
        return key not in frozen_at or item.event.meta.arrived_at < frozen_at[key]

    candidates = newest(
        ((i.event.meta.tenant_id, _challenge_id(i)), version_of(i), _challenge(i))
        for i in published
        if in_time(i)
    )
    accepted = replacing(candidates, {key: version for key, (_, version) in stored.items()})
    uow.challenges.replace([(key[0], challenge, version) for key, version, challenge in accepted])
    for (tenant, challenge_id), _, challenge in accepted:
        _recompute(uow, tenant, challenge, uow.challenges.entries_of(tenant, challenge_id), rules)


def _challenge_id(item: Received) -> str:
    payload = item.event.payload
    assert isinstance(payload, ev.ChallengePublished)
    return payload.challenge_id


def _challenge(item: Received) -> Challenge:
    payload = item.event.payload
    assert isinstance(payload, ev.ChallengePublished)
    return Challenge.from_event(payload)


def fold_registrations(uow: UnitOfWork, items: Sequence[Received], rules: Rules) -> None:
    """Record each registration (the earliest registration time wins, whatever the order) and
    compute its tallies from the user's stored trips."""
    earliest: dict[EntryKey, tuple[datetime, datetime]] = {}
    for item in items:
        payload = item.event.payload
        assert isinstance(payload, ev.ChallengeRegistered)
        key = (item.event.meta.tenant_id, payload.challenge_id, payload.user_id)
        seen = (payload.registered_at, item.event.meta.arrived_at)
        earliest[key] = min(earliest.get(key, seen), seen)
    stored = uow.challenges.registrations(earliest)
    changed = {
        key: min(value, stored[key]) if key in stored else value
        for key, value in earliest.items()
        if key not in stored or min(value, stored[key]) != stored[key]
    }
    challenges = uow.challenges.load({(t, c) for t, c, _ in changed})
    by_challenge: defaultdict[tuple[str, str], list[tuple[Entry, datetime]]] = defaultdict(list)
    for (tenant, challenge_id, user), (registered_at, arrived_at) in sorted(changed.items()):
        by_challenge[(tenant, challenge_id)].append((Entry(user, registered_at), arrived_at))
    for (tenant, challenge_id), entries in sorted(by_challenge.items()):
        known = challenges.get((tenant, challenge_id))
        if known is None:  # not published yet: its publication will compute the tallies
            uow.challenges.put_entries([(tenant, challenge_id, e, a) for e, a in entries])
        else:
            _recompute(uow, tenant, known[0], entries, rules)


def fold_trip_changes(uow: UnitOfWork, changes: Sequence[TripChange], rules: Rules) -> None:
    """Add what each changed trip now contributes, less what it contributed before, to the
    registrations of its user."""
    users = {(c.tenant_id, c.after.user_id) for c in changes}
    if not users:
        return
    entries = uow.challenges.entries_of_users(users)
    if not entries:
        return
    definitions = uow.challenges.load({(t, c) for t, c, _ in entries})
    by_user: defaultdict[tuple[str, str], list[tuple[Challenge, Entry]]] = defaultdict(list)
    for tenant, challenge_id, entry in entries:
        by_user[(tenant, entry.user_id)].append((definitions[(tenant, challenge_id)][0], entry))
    deltas: dict[EntryKey, tuple[Tally, Tally]] = {}
    grace = rules.late_event_grace
    for change in changes:
        for challenge, entry in by_user.get((change.tenant_id, change.after.user_id), ()):
            during, before = _delta(challenge, entry, change, grace)
            if during.is_empty and before.is_empty:
                continue
            key = (change.tenant_id, challenge.challenge_id, entry.user_id)
            old_during, old_before = deltas.get(key, (EMPTY_TALLY, EMPTY_TALLY))
            deltas[key] = (old_during + during, old_before + before)
    uow.challenges.add_to_entries(deltas)


def _delta(
    challenge: Challenge, entry: Entry, change: TripChange, grace: timedelta
) -> tuple[Tally, Tally]:
    after = _contribution(challenge, entry, change.after, grace)
    before = _contribution(challenge, entry, change.before, grace)
    return after[0] - before[0], after[1] - before[1]


def _contribution(
    challenge: Challenge, entry: Entry, trip: StoredTrip | None, grace: timedelta
) -> tuple[Tally, Tally]:
    if not isinstance(trip, TripFacts):
        return EMPTY_TALLY, EMPTY_TALLY
    return contribution(challenge, entry.registered_at, trip, grace)


def _recompute(
    uow: UnitOfWork,
    tenant: str,
    challenge: Challenge,
    entries: Sequence[tuple[Entry, datetime]],
    rules: Rules,
) -> None:
    trips = uow.trips.of_users(tenant, [e.user_id for e, _ in entries])
    uow.challenges.put_entries(
        [
            (
                tenant,
                challenge.challenge_id,
                entry_from_trips(
                    challenge, e.user_id, e.registered_at, trips, rules.late_event_grace
                ),
                a,
            )
            for e, a in entries
        ]
    )
