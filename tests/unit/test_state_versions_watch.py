"""What an API instance knows of the state's versions: the newest arrival reflected in some
parts of the state, and a wait that ends when they move."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from service.app.ports import StateVersion
from service.grpc.state_versions import StateVersions

T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)


async def test_as_of_is_the_latest_arrival_of_the_parts_named_none_if_no_event_moved_them() -> None:
    stored = {"a": StateVersion(3, T0), "b": StateVersion(1, T0 + timedelta(hours=1))}
    versions = StateVersions(lambda: dict(stored, keys=StateVersion(2, None)))
    await versions.refresh()
    assert versions.as_of("a") == T0
    assert versions.as_of("a", "b", "missing") == T0 + timedelta(hours=1)
    assert versions.as_of("keys", "missing") is None
    assert (versions.version("a"), versions.version("missing")) == (3, 0)


async def test_a_wait_ends_when_the_versions_move_and_not_when_they_are_read_unchanged() -> None:
    stored = {"a": StateVersion(1, T0)}
    versions = StateVersions(lambda: dict(stored))
    await versions.refresh()
    seen = versions.generation
    waiting = asyncio.ensure_future(versions.moved_since(seen))
    await versions.refresh()
    await asyncio.sleep(0)
    assert not waiting.done()
    stored["a"] = StateVersion(2, T0)
    await versions.refresh()
    await asyncio.wait_for(waiting, 5)
    assert versions.generation == seen + 1
    await asyncio.wait_for(versions.moved_since(seen), 5)  # moved already: no wait
