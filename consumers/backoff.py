"""Waiting on the database: a capped exponential back-off, and a call it leaves unanswered
reported as a back-off until it returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from consumers.reporter import Reporter

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
SILENT_DATABASE_SECONDS = 30.0
"""A batch the database has not answered for this long is reported as a back-off until it is
answered: a server or a link that stops answering without failing (hung storage, a middlebox
that swallows traffic) raises nothing, and ingest would stall while health says SERVING. Twice
PostgreSQL's lock timeout, so a batch queued behind another instance's is not reported."""


class Backoff:
    def __init__(self, first: float = FIRST_BACKOFF_SECONDS, cap: float = MAX_BACKOFF_SECONDS):
        self._first, self._cap = first, cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._cap)
        return delay

    def reset(self) -> None:
        self._next = self._first


class DatabaseWatch:
    """Awaits calls on the database; one left unanswered past `silent_seconds` is reported as
    a back-off until it returns (what was reported before comes back)."""

    def __init__(self, reporter: Reporter, silent_seconds: float = SILENT_DATABASE_SECONDS):
        self._reporter = reporter
        self._silent_seconds = silent_seconds

    async def __call__(self, work: Awaitable[T]) -> T:
        call = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({call}, timeout=self._silent_seconds)
        except asyncio.CancelledError:
            call.cancel()  # as awaiting it would
            raise
        if done:
            return call.result()
        previous = self._reporter.backing_off
        why = f"the database has not answered for {self._silent_seconds:.0f} s"
        log.error("%s; still waiting", why)
        self._reporter.back_off(why)
        try:
            return await call
        finally:
            log.warning("the database answered")
            self._reporter.back_off(previous)
