"""The state's versions, moved on by every batch that changes a part of the state, so that API
instances know when a cached answer is stale (`service.app.state_versions` names them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, select

from service.adapters.sql import InList, upsert
from service.adapters.tables import state_version_shards, state_versions
from service.app.ports import NO_SHARDS


class SqlStateVersionStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def numbers(self, keys: Iterable[str]) -> dict[str, int]:
        v = state_versions
        query = select(v.c.key, v.c.version).where(InList(v.c.key, keys))
        return {key: number for key, number in self._c.execute(query)}

    def shard_numbers(self, shards: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = set(shards)
        s = state_version_shards
        query = select(s.c.key, s.c.shard, s.c.version).where(
            InList(s.c.key, {key for key, _ in wanted})
        )
        found = {(key, shard): number for key, shard, number in self._c.execute(query)}
        return {at: number for at, number in found.items() if at in wanted}

    def bump(
        self,
        keys: Mapping[str, datetime | None],
        shards: Mapping[tuple[str, int], datetime | None] = NO_SHARDS,
    ) -> None:
        """Rows in key order, so two writers moving the same ones never wait for each other
        in a cycle."""
        rows = [{"key": key, "version": 1, "as_of": keys[key]} for key in sorted(keys)]
        upsert(self._c, state_versions, rows, keys=["key"], add=["version"], latest=["as_of"])
        rows = [
            {"key": key, "shard": shard, "version": 1, "as_of": shards[key, shard]}
            for key, shard in sorted(shards)
        ]
        upsert(
            self._c,
            state_version_shards,
            rows,
            keys=["key", "shard"],
            add=["version"],
            latest=["as_of"],
        )
