"""Finding the records that make a batch fail to fold.

A batch that fails for a reason of its own (not the database's: see `StorageUnavailable`) is
split until the records that cause the failure are found; they are dead-lettered with the
error as their reason and the rest is folded. Each try is a dry run (rolled back), so the batch
is still applied once, in one transaction, offsets included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from service.app.ports import OffsetMoved, StorageUnavailable
from service.logs import describe

T = TypeVar("T")

Attempt = Callable[[Sequence[T]], None]
"""Fold these items in a transaction that is rolled back; raise what the fold raises."""


class Unresolvable(RuntimeError):
    """The failure is not any record's: even an empty batch fails, or every record of a batch
    fails (a bug or a broken schema rather than bad data). Dead-lettering would empty the
    stream, so the partitions stall and an operator is told."""


def find_poison(items: Sequence[T], attempt: Attempt[T]) -> list[tuple[int, str]]:
    """The positions of the items that make `attempt` fail, each with why; folding all the
    others succeeds. Raises `Unresolvable` when the failure is not the items'."""

    def tried(chosen: list[int]) -> None:
        attempt([items[i] for i in chosen])

    if (error := _failure(tried, [])) is not None:
        raise Unresolvable(f"a batch without records fails too: {error}")
    poison = _isolate(list(range(len(items))), tried)
    if len(items) > 1 and len(poison) == len(items):
        raise Unresolvable(f"every record of the batch fails: {poison[0][1]}")
    return sorted(poison)


def _isolate(chosen: list[int], attempt: Callable[[list[int]], None]) -> list[tuple[int, str]]:
    error = _failure(attempt, chosen)
    if error is None:
        return []
    if len(chosen) == 1:
        return [(chosen[0], error)]
    middle = len(chosen) // 2
    found = _isolate(chosen[:middle], attempt) + _isolate(chosen[middle:], attempt)
    if not found:
        # Each half folds alone, not together: the culprit is the record whose arrival makes
        # a prefix fail (the smallest failing prefix is longer than the first half).
        low, high = middle, len(chosen)
        while high - low > 1:
            mid = (low + high) // 2
            if _failure(attempt, chosen[:mid]) is None:
                low = mid
            else:
                high = mid
        culprit = chosen[high - 1]
        found = [(culprit, _failure(attempt, chosen[:high]) or error)]
    bad = {index for index, _ in found}
    return found + _isolate([i for i in chosen if i not in bad], attempt)


def _failure(attempt: Callable[[list[int]], None], chosen: list[int]) -> str | None:
    try:
        attempt(chosen)
    except (OffsetMoved, StorageUnavailable):
        raise
    except Exception as error:
        return describe(error)
    return None
