"""The state's versions, moved on by every batch that changes a part of the state, so that API
instances know when a cached answer is stale (`service.app.state_versions` names them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, select

from service.adapters.sql import InList, upsert
from service.adapters.tables import state_versions


class SqlStateVersionStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def numbers(self, keys: Iterable[str]) -> dict[str, int]:
        v = state_versions
        query = select(v.c.key, v.c.version).where(InList(v.c.key, keys))
        return {key: number for key, number in self._c.execute(query)}

    def bump(self, keys: Mapping[str, datetime | None]) -> None:
        rows = [{"key": key, "version": 1, "as_of": keys[key]} for key in sorted(keys)]
        upsert(self._c, state_versions, rows, keys=["key"], add=["version"], latest=["as_of"])
