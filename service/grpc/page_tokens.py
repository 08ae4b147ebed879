"""Page tokens: opaque to callers, bound to the request they continue.

A token holds the sort key of the last entrant its page showed (the next page starts strictly
after it: docs/rules.md#boards-pages-and-neighbours), for a month's ranking the month the first
page resolved (so a list of "the current month" stays on that month across a month's turn),
and a digest of what the request asked for: its method, tenant and what it lists (a month's
type, group, month and list; a challenge and its group). A token used with any other request
is refused rather than silently paging some other list; the page size may change between
pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection, Hashable
from dataclasses import dataclass

from service.domain.boards import SortKey
from service.domain.errors import invalid_page_token
from service.domain.ranking import Month

VERSION = 1


@dataclass(frozen=True, slots=True)
class Continuation:
    after: SortKey
    month: Month | None = None
    """The month the first page resolved (a month's ranking); None for a challenge."""


def encode(request: Hashable, after: SortKey, month: Month | None = None) -> str:
    body: dict[str, object] = {"v": VERSION, "r": _digest(request)}
    if month is not None:
        body["m"] = [month.year, month.number]
    body["k"] = after
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(
    token: str, request: Hashable, key_lengths: Collection[int], *, with_month: bool = False
) -> Continuation:
    """The page `token` continues, for `request` (what the caller asks now, as given to
    `encode`) over a list of sort keys of one of `key_lengths`, holding a month if
    `with_month`; `invalid_page_token` if it is not a token of ours or of another request."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        version, digest, after = body["v"], body["r"], body["k"]
        month = body.get("m")
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as error:
        raise invalid_page_token("not a page token of this method") from error
    if (
        version != VERSION
        or not _is_sort_key(after, key_lengths)
        or (month is not None and not _is_month(month))
    ):
        raise invalid_page_token("not a page token of this method")
    if digest != _digest(request) or (month is not None) != with_month:
        raise invalid_page_token(
            "it continues another list (another method, challenge, type, group, month or"
            " not_ranked); start again without a token"
        )
    return Continuation(tuple(after), None if month is None else Month(*month))


def _digest(request: Hashable) -> str:
    return hashlib.sha256(repr(request).encode()).hexdigest()[:16]


def _is_sort_key(value: object, lengths: Collection[int]) -> bool:
    """Numbers, then a user id: the shape of the list's keys, so comparing never fails."""
    if not isinstance(value, list) or len(value) not in lengths:
        return False
    *numbers, user_id = value
    return isinstance(user_id, str) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in numbers
    )


def _is_month(value: object) -> bool:
    if not isinstance(value, list) or len(value) != 2:
        return False
    year, number = value
    return isinstance(year, int) and isinstance(number, int) and 1 <= number <= 12
