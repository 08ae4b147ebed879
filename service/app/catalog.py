"""Fold catalog events: user profiles (challenges and path sessions have their own modules)."""

from __future__ import annotations

from collections.abc import Sequence

from service.app.ports import UnitOfWork
from service.app.records import Received, version_of
from service.domain.events import UserUpserted
from service.domain.versions import newest, replacing


def fold_users(uow: UnitOfWork, items: Sequence[Received]) -> None:
    """Replace each profile by the newest `user_upserted` (by occurred_at, then event_id), so
    the outcome does not depend on the order the events arrive in; every version is kept too,
    with when it arrived, for the membership of frozen windows."""
    profiles = [(i, p) for i in items if isinstance(p := i.event.payload, UserUpserted)]
    uow.users.record_versions(
        [(i.event.meta.tenant_id, p, version_of(i), i.event.meta.arrived_at) for i, p in profiles]
    )
    candidates = newest(
        ((i.event.meta.tenant_id, p.user_id), version_of(i), p) for i, p in profiles
    )
    stored = uow.users.versions(candidates)
    uow.users.replace(
        [
            (tenant, profile, version)
            for (tenant, _), version, profile in replacing(candidates, stored)
        ]
    )
