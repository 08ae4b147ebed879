"""Records that could not be folded, kept whole with their reason."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, update

from service.adapters.sql import upsert
from service.adapters.tables import dead_letters
from service.app.ports import LetterGone
from service.app.records import DeadLetter


class SqlDeadLetterStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, letters: Sequence[DeadLetter], now: datetime) -> None:
        """Keep each record's letter once: a replay of the same offsets adds nothing."""
        upsert(
            self._c,
            dead_letters,
            [
                {
                    "topic": d.record.topic,
                    "partition": d.record.partition,
                    "offset": d.record.offset,
                    "record_timestamp_ms": d.record.timestamp_ms,
                    "key": d.record.key,
                    "value": d.record.value,
                    "headers": encode_headers(d.record.headers),
                    "reason": d.rejection.reason,
                    "tenant_id": d.rejection.tenant_id,
                    "event_id": d.rejection.event_id,
                    "first_failed_at": now,
                    "last_failed_at": now,
                    "attempts": 1,
                }
                for d in _one_per_record(letters)
            ],
            keys=["topic", "partition", "offset"],
        )

    def remove(self, ids: Iterable[int]) -> None:
        """Remove replayed letters; if one is gone already, another replay got there first
        and this one must not apply it again."""
        id_list = sorted(set(ids))
        if not id_list:
            return
        removed = self._c.execute(delete(dead_letters).where(dead_letters.c.id.in_(id_list)))
        if removed.rowcount != len(id_list):
            raise LetterGone("some dead letters were replayed concurrently; nothing applied")

    def failed_again(self, letter_id: int, reason: str, now: datetime) -> None:
        self._c.execute(
            update(dead_letters)
            .where(dead_letters.c.id == letter_id)
            .values(reason=reason, last_failed_at=now, attempts=dead_letters.c.attempts + 1)
        )


def _one_per_record(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    return list({d.record.id: d for d in letters}.values())


def encode_headers(headers: Iterable[tuple[str, bytes | None]]) -> str:
    """Headers as JSON text (a null value stays null); bytes as latin-1, which maps each byte
    to one character and back."""
    return json.dumps(
        [[name, None if value is None else value.decode("latin-1")] for name, value in headers]
    )


def decode_headers(raw: str) -> tuple[tuple[str, bytes | None], ...]:
    return tuple(
        (name, None if value is None else value.encode("latin-1"))
        for name, value in json.loads(raw)
    )
