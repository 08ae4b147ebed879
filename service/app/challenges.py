"""Fold challenge events (docs/rules.md#challenges): publications and registrations recompute
the entries they touch from the stored trips; trip changes add their contribution to the
existing entries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from service.app.ports import EntryKey, Registration, UnitOfWork
from service.app.records import IgnoredEvent, Received, version_of
from service.app.trips import TripFold
from service.domain import events as ev
from service.domain.challenges import (
    Challenge,
    Entry,
    contribution,
    entry_from_trips,
    first_registration,
)
from service.domain.rules import Rules
from service.domain.standings import EMPTY_TALLY, Tally
from service.domain.trips import StoredTrip, TripFacts
from service.domain.versions import newest, replacing


def fold_publications(uow: UnitOfWork, items: Sequence[Received], rules: Rules) -> None:
    """Replace each challenge by its newest publication (by occurred_at, then event_id) and
    recompute its entries from its registrations. A publication arriving once the stored
    challenge froze changes nothing."""
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
        registrations = uow.challenges.registrations_of(tenant, challenge_id)
        entries = _entries(uow, tenant, challenge, registrations, rules)
        uow.challenges.replace_entries(tenant, challenge_id, entries)


def _challenge_id(item: Received) -> str:
    payload = item.event.payload
    assert isinstance(payload, ev.ChallengePublished | ev.ChallengeRegistered)
    return payload.challenge_id


def _challenge(item: Received) -> Challenge:
    payload = item.event.payload
    assert isinstance(payload, ev.ChallengePublished)
    return Challenge.from_event(payload)


def fold_registrations(
    uow: UnitOfWork, items: Sequence[Received], rules: Rules
) -> list[IgnoredEvent]:
    """Record each registration as it came; a published challenge's entry is the earliest
    registration that arrived before the challenge froze, whatever order they come in. One
    arriving later changes nothing, and is returned for operators."""
    came = [(_registration_key(i), _registration(i), i) for i in items]
    uow.challenges.add_registrations((key, registration) for key, registration, _ in came)
    challenges = uow.challenges.load({(t, c) for (t, c, _), _, _ in came})
    grace = rules.late_event_grace
    late = [
        IgnoredEvent(
            item.record,
            key[0],
            item.event.meta.event_id,
            "after_freeze",
            f"the registration arrived after challenge {key[1]!r} froze",
        )
        for key, (_, arrived_at), item in came
        if (known := challenges.get(key[:2])) is not None
        and arrived_at >= known[0].freezes_at(grace)
    ]
    keys = {key for key, _, _ in came if key[:2] in challenges}
    registrations = uow.challenges.registrations(keys)
    stored = uow.challenges.entries(keys)
    changed: defaultdict[tuple[str, str], dict[str, list[Registration]]] = defaultdict(dict)
    for key in sorted(keys):
        challenge = challenges[key[:2]][0]
        first = first_registration(registrations.get(key, []), challenge.freezes_at(grace))
        entry = stored.get(key)
        if first is not None and (entry is None or (entry[0].registered_at, entry[1]) != first):
            changed[key[:2]][key[2]] = [first]
    for (tenant, challenge_id), by_user in sorted(changed.items()):
        challenge = challenges[(tenant, challenge_id)][0]
        entries = _entries(uow, tenant, challenge, by_user, rules)
        uow.challenges.put_entries([(tenant, challenge_id, e, a) for e, a in entries])
    return late


def _registration_key(item: Received) -> EntryKey:
    payload = item.event.payload
    assert isinstance(payload, ev.ChallengeRegistered)
    return (item.event.meta.tenant_id, payload.challenge_id, payload.user_id)


def _registration(item: Received) -> Registration:
    payload = item.event.payload
    assert isinstance(payload, ev.ChallengeRegistered)
    return (payload.registered_at, item.event.meta.arrived_at)


def fold_trip_changes(uow: UnitOfWork, trips: TripFold, rules: Rules) -> None:
    """Add what each changed trip now contributes, less what it contributed before, to the
    registrations of its user."""
    users = trips.users()
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
    for tenant, before, after in trips.changes():
        for challenge, entry in by_user.get((tenant, after.user_id), ()):
            during, earlier = _delta(challenge, entry, before, after, grace)
            if during.is_empty and earlier.is_empty:
                continue
            key = (tenant, challenge.challenge_id, entry.user_id)
            old_during, old_before = deltas.get(key, (EMPTY_TALLY, EMPTY_TALLY))
            deltas[key] = (old_during + during, old_before + earlier)
    uow.challenges.add_to_entries(deltas)


def _delta(
    challenge: Challenge,
    entry: Entry,
    before: StoredTrip | None,
    after: StoredTrip,
    grace: timedelta,
) -> tuple[Tally, Tally]:
    """What a trip's change adds to an entry: during the challenge, and before it."""
    now = _contribution(challenge, entry, after, grace)
    then = _contribution(challenge, entry, before, grace)
    return now[0] - then[0], now[1] - then[1]


def _contribution(
    challenge: Challenge, entry: Entry, trip: StoredTrip | None, grace: timedelta
) -> tuple[Tally, Tally]:
    if not isinstance(trip, TripFacts):
        return EMPTY_TALLY, EMPTY_TALLY
    return contribution(challenge, entry.registered_at, trip, grace)


def _entries(
    uow: UnitOfWork,
    tenant: str,
    challenge: Challenge,
    registrations: Mapping[str, Sequence[Registration]],
    rules: Rules,
) -> list[tuple[Entry, datetime]]:
    """Each registered user's entry, its tallies computed from their trips, with when the
    registration it stands on arrived."""
    grace = rules.late_event_grace
    firsts = {
        user: first
        for user, theirs in sorted(registrations.items())
        if (first := first_registration(theirs, challenge.freezes_at(grace))) is not None
    }
    trips: defaultdict[str, list[TripFacts]] = defaultdict(list)
    for trip in uow.trips.of_users(tenant, list(firsts)):
        trips[trip.user_id].append(trip)  # each entry reads its own user's trips, not all
    return [
        (entry_from_trips(challenge, user, registered_at, trips[user], grace), arrived_at)
        for user, (registered_at, arrived_at) in firsts.items()
    ]
