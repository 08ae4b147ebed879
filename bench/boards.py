"""Kept boards in memory and in CPU, in this process, on a read model of made-up rows (no
database: what is measured is what the API instance keeps and does with what it read).

- the memory one 10,000-driver board holds once kept (its sorted drivers, the board it gives,
  the serialized month made from it with the pieces kept for the next), by tracemalloc;
- a kept board updated with the drivers changed by one batch and written again, beside the
  same board read anew and written whole by protobuf;
- 1,000 tenants of 5 groups each asked for their month through one answer cache under
  `PODIUM_BOARD_CACHE_MB`: what the cache holds at the end, and the process's traced memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from service.app.answers import MonthBoardQuery
from service.app.ports import ReadModel, StateVersion
from service.app.state_versions import month_key
from service.domain.events import ScoreKind
from service.domain.ranking import Month, Profile
from service.domain.rules import Rules
from service.domain.standings import Tally, Thresholds
from service.grpc import convert
from service.grpc.cache import AnswerCache, Encoded

RULES = Rules(Thresholds(5, Decimal(20)), timedelta(hours=24))
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
MONTH = Month.of(NOW)
BATCH_CHANGES = 200
"""Drivers changed by one batch: 700 trips a second committed about every 0.3 s."""


class MadeUp:
    """A read model of `drivers` drivers per group, whose months move by `changed` drivers
    at each version."""

    def __init__(self, drivers: int, seed: int = 7) -> None:
        self.drivers = drivers
        self.version = 1
        self._random = random.Random(seed)
        self._tallies: dict[str, Tally] = {}
        self._changed: dict[str, int] = {}

    def move(self, changed: int) -> None:
        self.version += 1
        for n in self._random.sample(range(self.drivers), changed):
            user = f"d{n}"
            self._tallies[user] = self._tally() + self.tally_of(user)
            self._changed[user] = self.version

    def tally_of(self, user: str) -> Tally:
        found = self._tallies.get(user)
        if found is None:
            found = self._tallies[user] = self._tally()
        return found

    def _tally(self) -> Tally:
        km = Decimal(self._random.randint(1_000, 90_000)).scaleb(-3)
        score = Decimal(self._random.randint(5_000, 10_000)).scaleb(-2)
        return Tally(self._random.randint(1, 12), km, score * km, km)

    # --- the read model's reads a month board makes ---

    def state_versions(self, keys: Iterable[str] | None = None) -> dict[str, StateVersion]:
        return {key: StateVersion(self.version, NOW) for key in keys or ()}

    def profiles(self, tenant_id: str, group: str | None, as_of: Any = None) -> list[Profile]:
        return [
            Profile(f"d{n}", "Firstname", "Lastname", f"pseudo{n}") for n in range(self.drivers)
        ]

    def known_groups(self, tenant_id: str) -> frozenset[str]:
        return frozenset()

    def month_tallies(
        self, tenant_id: str, month: Month, kind: Any, group: Any, as_of: Any = None
    ) -> dict[str, Tally]:
        return {f"d{n}": self.tally_of(f"d{n}") for n in range(self.drivers)}

    def month_changes(
        self, tenant_id: str, month: Month, kind: Any, since: int
    ) -> dict[str, Tally | None]:
        return {u: self._tallies[u] for u, at in self._changed.items() if at > since}


@contextlib.contextmanager
def traced() -> Iterator[list[int]]:
    """The traced memory allocated (and still held) inside the block, in bytes."""
    gc.collect()
    tracemalloc.start()
    held: list[int] = []
    try:
        yield held
    finally:
        gc.collect()
        held.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()


def one_board(drivers: int) -> None:
    model = MadeUp(drivers)
    read = cast(ReadModel, model)
    query = MonthBoardQuery("acme", ScoreKind.SAFETY, "group-0", MONTH, RULES, NOW)
    model.month_tallies("acme", MONTH, None, None)  # the rows exist before: not the board's
    with traced() as held:
        board = query.load(read)
        data, pieces = convert.month_ranking_bytes(board.ranking)
    print(
        f"one kept board of {drivers:,} drivers: {held[0] / 2**20:,.1f} MiB "
        f"({held[0] / drivers:,.0f} bytes a driver; the month's bytes {len(data) / 2**20:.2f} MiB)"
    )
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        model.move(BATCH_CHANGES)
        was = {month_key("acme", MONTH): model.version - 1}
        now = {month_key("acme", MONTH): model.version}
        updated = query.update(read, board, was, now)
        assert updated is not None
        board = updated
        data, pieces = convert.month_ranking_bytes(board.ranking, pieces)
    kept = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for _ in range(3):
        whole = query.load(read)
        convert.month_ranking_message(whole.ranking).SerializeToString()
    anew = (time.perf_counter() - started) / 3
    print(
        f"a batch of {BATCH_CHANGES} changed drivers: kept board updated and written "
        f"{kept * 1e3:.1f} ms, read anew and written whole {anew * 1e3:.1f} ms "
        f"(ratio {anew / kept:.1f}x)"
    )


async def many_tenants(tenants: int, groups: int, drivers: int, budget_mb: int) -> None:
    models = {f"t{n}": MadeUp(drivers, seed=n) for n in range(tenants)}
    asked: list[str] = []

    @contextlib.contextmanager
    def read_models(statement_timeout: float | None = None) -> Iterator[ReadModel]:
        yield cast(ReadModel, models[asked[-1]])

    cache = AnswerCache(
        read_models,
        lambda key: StateVersion(1, NOW),
        budget_bytes=budget_mb * 2**20,
        executor=None,
    )
    with traced() as held:
        for tenant in models:
            for group in range(groups):
                asked.append(tenant)
                query = MonthBoardQuery(tenant, ScoreKind.SAFETY, f"g{group}", MONTH, RULES, NOW)
                loaded = await cache.value(query)
                ranking = loaded.value.ranking

                def write(kept: object, ranking: Any = ranking) -> Encoded:
                    data, pieces = convert.month_ranking_bytes(ranking, cast(Any, kept))
                    return Encoded(data, pieces)

                await cache.made(("month", *query.key[1:]), (loaded,), write)
        reckoned = cache.held_bytes
        del cache
    boards = tenants * groups
    print(
        f"{tenants:,} tenants x {groups} groups ({boards:,} boards of {drivers} drivers, "
        f"PODIUM_BOARD_CACHE_MB={budget_mb}): the cache reckons it holds "
        f"{reckoned / 2**20:,.1f} MiB; traced memory held with it {held[0] / 2**20:,.1f} MiB "
        f"(unbounded, every board kept: about {boards * drivers * 1_500 / 2**20:,.0f} MiB)"
    )


async def bench_boards() -> None:
    one_board(10_000)
    await many_tenants(1_000, 5, 200, budget_mb=64)


def main() -> None:
    asyncio.run(bench_boards())


if __name__ == "__main__":
    main()
