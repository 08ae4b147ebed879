"""Fold catalog events: user profiles (challenges and path sessions have their own modules)."""

from __future__ import annotations

from collections.abc import Sequence

from service.app.ports import UnitOfWork
from service.app.records import Received
from service.domain.events import UserUpserted
from service.domain.versions import Version


def fold_users(uow: UnitOfWork, items: Sequence[Received]) -> None:
    """Replace each profile by the newest `user_upserted` (by occurred_at, then event_id), so
    the outcome does not depend on the order the events arrive in."""
    newest: dict[tuple[str, str], tuple[UserUpserted, Version]] = {}
    for item in items:
        payload = item.event.payload
        assert isinstance(payload, UserUpserted)
        meta = item.event.meta
        key = (meta.tenant_id, payload.user_id)
        version = Version(meta.occurred_at, meta.event_id)
        if key not in newest or version > newest[key][1]:
            newest[key] = (payload, version)
    stored = uow.users.versions(newest)
    uow.users.replace(
        [
            (tenant, payload, version)
            for (tenant, _), (payload, version) in sorted(newest.items())
            if (tenant, payload.user_id) not in stored
            or version > stored[(tenant, payload.user_id)]
        ]
    )
