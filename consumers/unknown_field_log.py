"""How the consumer loop reports the fields of JSON records that Podium does not know
(`consumers.unknown_fields`): each one counted by topic, and each field path logged once per
topic, so that operators learn that producers send more than Podium reads (a newer contract,
docs/events.md, "Evolving the events") without a line per record."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import Counter

log = logging.getLogger(__name__)

MAX_LOGGED_PATHS = 1_000
"""Paths remembered per topic: a producer writing ever new keys must not grow the process;
beyond, one more line says the rest are counted only."""


class UnknownFieldLog:
    def __init__(self, counter: Counter, topics: Iterable[str]) -> None:
        self._counter = counter
        for topic in topics:  # a series from the start, at 0: rates work from the first field
            counter.labels(topic)
        self._logged: dict[str, set[str]] = {}
        self._full: set[str] = set()
        """Topics whose MAX_LOGGED_PATHS paths were logged."""

    def note(self, topic: str, paths: tuple[str, ...]) -> None:
        """The unknown fields of one record of `topic` (a field of a repeated message once
        per item)."""
        if not paths:
            return
        self._counter.labels(topic).inc(len(paths))
        logged = self._logged.setdefault(topic, set())
        for path in paths:
            if path in logged or topic in self._full:
                continue
            if len(logged) == MAX_LOGGED_PATHS:
                self._full.add(topic)
                log.warning(
                    "%s: %d unknown fields logged; the next ones are only counted "
                    "(podium_unknown_fields_total)",
                    topic,
                    MAX_LOGGED_PATHS,
                    extra={"topic": topic},
                )
                continue
            logged.add(path)
            log.warning(
                "%s: records carry %s, a field Podium does not know; it is ignored, as binary "
                "protobuf ignores it (this line once per topic and field; every one is counted "
                "in podium_unknown_fields_total)",
                topic,
                path,
                extra={"topic": topic, "field": path},
            )
