"""User profiles and group membership (catalog `user_upserted`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, select

from service.adapters.sql import key_lookups, upsert
from service.adapters.tables import profile_version_groups, profile_versions, user_groups, users
from service.app.ports import TenantUser
from service.domain.events import UserUpserted
from service.domain.versions import Version


class SqlUserStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def versions(self, keys: Iterable[TenantUser]) -> dict[TenantUser, Version]:
        found: dict[TenantUser, Version] = {}
        for condition in key_lookups((users.c.tenant_id, users.c.user_id), keys):
            rows = self._c.execute(
                select(
                    users.c.tenant_id, users.c.user_id, users.c.version_at, users.c.version_event
                ).where(condition)
            )
            for tenant, user, at, event_id in rows:
                found[(tenant, user)] = Version(at, event_id)
        return found

    def record_versions(
        self, versions: Sequence[tuple[str, UserUpserted, Version, datetime]]
    ) -> None:
        # A version re-sent keeps its earliest arrival, whatever the order the copies are
        # folded in: frozen windows place users by it (docs/rules.md#arrival-time-and-freezes).
        unique: dict[tuple[str, str, Version], tuple[UserUpserted, datetime]] = {}
        for tenant, p, v, at in versions:
            seen = unique.get((tenant, p.user_id, v))
            unique[(tenant, p.user_id, v)] = (p, at if seen is None else min(seen[1], at))
        key = ("tenant_id", "user_id", "version_at", "version_event")
        upsert(
            self._c,
            profile_versions,
            [
                {
                    "tenant_id": tenant,
                    "user_id": user,
                    "version_at": v.at,
                    "version_event": v.event_id,
                    "arrived_at": at,
                }
                for (tenant, user, v), (_, at) in sorted(unique.items())
            ],
            keys=key,
            earliest=["arrived_at"],
        )
        upsert(
            self._c,
            profile_version_groups,
            [
                {
                    "tenant_id": tenant,
                    "user_id": user,
                    "version_at": v.at,
                    "version_event": v.event_id,
                    "group_label": group,
                }
                for (tenant, user, v), (p, _) in sorted(unique.items())
                for group in sorted(set(p.groups))
            ],
            keys=[*key, "group_label"],
        )

    def replace(self, profiles: Sequence[tuple[str, UserUpserted, Version]]) -> None:
        """Replace whole profiles, group membership included."""
        if not profiles:
            return
        upsert(
            self._c,
            users,
            [
                {
                    "tenant_id": tenant,
                    "user_id": p.user_id,
                    "email": p.email,
                    "email_lower": p.email.lower(),
                    "firstname": p.firstname,
                    "lastname": p.lastname,
                    "pseudo": p.pseudo,
                    "version_at": version.at,
                    "version_event": version.event_id,
                }
                for tenant, p, version in profiles
            ],
            keys=["tenant_id", "user_id"],
            replace=[
                "email",
                "email_lower",
                "firstname",
                "lastname",
                "pseudo",
                "version_at",
                "version_event",
            ],
        )
        keys = [(tenant, p.user_id) for tenant, p, _ in profiles]
        for condition in key_lookups((user_groups.c.tenant_id, user_groups.c.user_id), keys):
            self._c.execute(delete(user_groups).where(condition))
        memberships = [
            {"tenant_id": tenant, "group_label": group, "user_id": p.user_id}
            for tenant, p, _ in profiles
            for group in p.groups
        ]
        upsert(self._c, user_groups, memberships, keys=["tenant_id", "group_label", "user_id"])
