"""What decoding works out once and remembers: values of a pure function by their key, at
most so many of them (then it starts again), for the parts of records that repeat (a trip's
scores: producers send a few hundred distinct values of each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Remembered(Generic[K, V]):
    """A bounded table of values by key. Safe to share between threads: a race at worst
    works a value out twice, or forgets the table once too often."""

    __slots__ = ("_size", "_values", "get")

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: dict[K, V] = {}
        self.get: Callable[[K], V | None] = self._values.get
        """The value remembered for a key, or None (the table's own method: no call more)."""

    def keep(self, key: K, value: V) -> V:
        """Remember `value` for `key`, and return it."""
        if len(self._values) >= self._size:
            self._values.clear()
        self._values[key] = value
        return value
