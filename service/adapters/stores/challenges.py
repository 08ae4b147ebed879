"""Challenges, their groups, and per-registration tallies (challenge_entries)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, select

from service.adapters.sql import add_to_rows, key_lookups, upsert
from service.adapters.tables import (
    challenge_entries,
    challenge_groups,
    challenge_registrations,
    challenges,
)
from service.app.ports import ChallengeKey, EntryKey, Registration, TenantUser
from service.domain.challenges import Challenge, Entry
from service.domain.events import ChallengeTheme
from service.domain.exact import exact
from service.domain.standings import Tally
from service.domain.versions import Version

TALLY_FIELDS = ("trips", "km", "weighted", "weight")
_REGISTRATION_KEY = ["tenant_id", "challenge_id", "user_id", "registered_at", "arrived_at"]


def challenge_from_row(row: Row[Any], groups: Sequence[str]) -> Challenge:
    return Challenge(
        challenge_id=row.challenge_id,
        title=row.title,
        theme=ChallengeTheme(row.theme),
        start_at=row.start_at,
        end_at=row.end_at,
        groups=tuple(sorted(groups)),
        min_trips=row.min_trips,
        min_km=exact(row.min_distance_km),
        pre_period=timedelta(microseconds=row.pre_period_us),
        pre_min_trips=row.pre_min_trips,
    )


def entry_from_row(row: Row[Any]) -> Entry:
    return Entry(row.user_id, row.registered_at, _tally(row, "during"), _tally(row, "before"))


def _tally(row: Row[Any], prefix: str) -> Tally:
    return Tally(*(getattr(row, f"{prefix}_{f}") for f in TALLY_FIELDS))


def _tally_values(prefix: str, tally: Tally) -> dict[str, object]:
    return {f"{prefix}_{f}": getattr(tally, f) for f in TALLY_FIELDS}


class SqlChallengeStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(self, keys: Iterable[ChallengeKey]) -> dict[ChallengeKey, tuple[Challenge, Version]]:
        found: dict[ChallengeKey, tuple[Challenge, Version]] = {}
        key_list = list(keys)
        groups = self._groups(key_list)
        for condition in key_lookups((challenges.c.tenant_id, challenges.c.challenge_id), key_list):
            for row in self._c.execute(select(challenges).where(condition)):
                key = (row.tenant_id, row.challenge_id)
                version = Version(row.version_at, row.version_event)
                found[key] = (challenge_from_row(row, groups.get(key, ())), version)
        return found

    def _groups(self, keys: Sequence[ChallengeKey]) -> dict[ChallengeKey, list[str]]:
        groups: dict[ChallengeKey, list[str]] = {}
        columns = (challenge_groups.c.tenant_id, challenge_groups.c.challenge_id)
        for condition in key_lookups(columns, keys):
            for row in self._c.execute(select(challenge_groups).where(condition)):
                groups.setdefault((row.tenant_id, row.challenge_id), []).append(row.group_label)
        return groups

    def replace(self, published: Sequence[tuple[str, Challenge, Version]]) -> None:
        """Replace whole challenges, their groups included."""
        if not published:
            return
        rows = [
            {
                "tenant_id": tenant,
                "challenge_id": c.challenge_id,
                "title": c.title,
                "theme": c.theme.value,
                "start_at": c.start_at,
                "end_at": c.end_at,
                "min_trips": c.min_trips,
                "min_distance_km": float(c.min_km),
                "pre_period_us": c.pre_period // timedelta(microseconds=1),
                "pre_min_trips": c.pre_min_trips,
                "version_at": v.at,
                "version_event": v.event_id,
            }
            for tenant, c, v in published
        ]
        values = [c.name for c in challenges.c if not c.primary_key]
        upsert(self._c, challenges, rows, keys=["tenant_id", "challenge_id"], replace=values)
        keys = [(tenant, c.challenge_id) for tenant, c, _ in published]
        columns = (challenge_groups.c.tenant_id, challenge_groups.c.challenge_id)
        for condition in key_lookups(columns, keys):
            self._c.execute(delete(challenge_groups).where(condition))
        memberships = [
            {"tenant_id": tenant, "challenge_id": c.challenge_id, "group_label": group}
            for tenant, c, _ in published
            for group in c.groups
        ]
        upsert(
            self._c,
            challenge_groups,
            memberships,
            keys=["tenant_id", "challenge_id", "group_label"],
        )

    def add_registrations(self, registrations: Iterable[tuple[EntryKey, Registration]]) -> None:
        rows = [
            {
                "tenant_id": tenant,
                "challenge_id": challenge_id,
                "user_id": user,
                "registered_at": registered_at,
                "arrived_at": arrived_at,
            }
            for (tenant, challenge_id, user), (registered_at, arrived_at) in sorted(
                set(registrations)
            )
        ]
        upsert(self._c, challenge_registrations, rows, keys=_REGISTRATION_KEY)

    def registrations(self, keys: Iterable[EntryKey]) -> dict[EntryKey, list[Registration]]:
        r = challenge_registrations
        columns = (r.c.tenant_id, r.c.challenge_id, r.c.user_id)
        found: defaultdict[EntryKey, list[Registration]] = defaultdict(list)
        for condition in key_lookups(columns, keys):
            query = select(*columns, r.c.registered_at, r.c.arrived_at).where(condition)
            for tenant, challenge_id, user, registered_at, arrived_at in self._c.execute(query):
                found[(tenant, challenge_id, user)].append((registered_at, arrived_at))
        return {key: sorted(times) for key, times in found.items()}

    def registrations_of(self, tenant_id: str, challenge_id: str) -> dict[str, list[Registration]]:
        r = challenge_registrations
        query = select(r.c.user_id, r.c.registered_at, r.c.arrived_at).where(
            r.c.tenant_id == tenant_id, r.c.challenge_id == challenge_id
        )
        found: defaultdict[str, list[Registration]] = defaultdict(list)
        for user, registered_at, arrived_at in self._c.execute(query):
            found[user].append((registered_at, arrived_at))
        return {user: sorted(times) for user, times in found.items()}

    def entries(self, keys: Iterable[EntryKey]) -> dict[EntryKey, tuple[Entry, datetime]]:
        e = challenge_entries
        found: dict[EntryKey, tuple[Entry, datetime]] = {}
        for condition in key_lookups((e.c.tenant_id, e.c.challenge_id, e.c.user_id), keys):
            for row in self._c.execute(select(e).where(condition)):
                found[(row.tenant_id, row.challenge_id, row.user_id)] = (
                    entry_from_row(row),
                    row.arrived_at,
                )
        return found

    def replace_entries(
        self, tenant_id: str, challenge_id: str, entries: Sequence[tuple[Entry, datetime]]
    ) -> None:
        e = challenge_entries
        self._c.execute(
            delete(e).where(e.c.tenant_id == tenant_id, e.c.challenge_id == challenge_id)
        )
        self.put_entries([(tenant_id, challenge_id, entry, at) for entry, at in entries])

    def entries_of_users(self, users: Iterable[TenantUser]) -> list[tuple[str, str, Entry]]:
        """Registrations of these users to published challenges: (tenant, challenge_id, entry)."""
        users = list(users)
        registering = self._tenants_with_entries({tenant for tenant, _ in users})
        users = [user for user in users if user[0] in registering]
        found: list[tuple[str, str, Entry]] = []
        published = (challenges.c.tenant_id == challenge_entries.c.tenant_id) & (
            challenges.c.challenge_id == challenge_entries.c.challenge_id
        )
        columns = (challenge_entries.c.tenant_id, challenge_entries.c.user_id)
        for condition in key_lookups(columns, users):
            rows = self._c.execute(
                select(challenge_entries).join(challenges, published).where(condition)
            )
            found.extend((row.tenant_id, row.challenge_id, entry_from_row(row)) for row in rows)
        return found

    def _tenants_with_entries(self, tenants: set[str]) -> set[str]:
        """The tenants among these with any registration, each asked by one probe of the
        primary key: a batch of trips names thousands of users, and looking them up by user
        cost 9.6-12 ms of Podium's CPU a batch of 10,000 drivers (0.9-2.1 ms probed first),
        for nothing in a tenant without challenges."""
        return {
            tenant
            for tenant in tenants
            if self._c.execute(
                select(challenge_entries.c.tenant_id)
                .where(challenge_entries.c.tenant_id == tenant)
                .limit(1)
            ).first()
            is not None
        }

    def put_entries(self, entries: Sequence[tuple[str, str, Entry, datetime]]) -> None:
        """Write registrations with their tallies: (tenant, challenge_id, entry, arrived_at)."""
        rows = [
            {
                "tenant_id": tenant,
                "challenge_id": challenge_id,
                "user_id": entry.user_id,
                "registered_at": entry.registered_at,
                "arrived_at": arrived_at,
                **_tally_values("during", entry.during),
                **_tally_values("before", entry.before),
            }
            for tenant, challenge_id, entry, arrived_at in sorted(
                entries, key=lambda e: (*e[:2], e[2].user_id)
            )
        ]
        values = [c.name for c in challenge_entries.c if not c.primary_key]
        upsert(
            self._c,
            challenge_entries,
            rows,
            keys=["tenant_id", "challenge_id", "user_id"],
            replace=values,
        )

    def add_to_entries(self, deltas: Mapping[EntryKey, tuple[Tally, Tally]]) -> None:
        """Add (during, before) deltas to stored registrations."""
        rows = [
            {
                "tenant_id": tenant,
                "challenge_id": challenge_id,
                "user_id": user,
                **_tally_values("during", during),
                **_tally_values("before", before),
            }
            for (tenant, challenge_id, user), (during, before) in deltas.items()
        ]
        add_to_rows(self._c, challenge_entries, rows, keys=["tenant_id", "challenge_id", "user_id"])
