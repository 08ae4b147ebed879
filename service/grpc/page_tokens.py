"""Page tokens: opaque to callers, bound to the request they continue.

A token holds the sort key of the last entrant its page showed (the next page starts strictly
after it: docs/rules.md#boards-pages-and-neighbours), the month the first page resolved (so a
list of "the current month" stays on that month across a month's turn), and a digest of what
the request asked for. A token used with another tenant, type, group, month or list is
refused rather than silently paging some other board; the page size may change between pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Hashable
from dataclasses import dataclass

from service.domain.boards import SortKey
from service.domain.errors import invalid_page_token
from service.domain.ranking import Month

VERSION = 1


@dataclass(frozen=True, slots=True)
class Continuation:
    month: Month
    after: SortKey


def encode(request: Hashable, month: Month, after: SortKey) -> str:
    body = {"v": VERSION, "r": _digest(request), "m": [month.year, month.number], "k": after}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, request: Hashable, key_length: int) -> Continuation:
    """The page `token` continues, for `request` (what the caller asks now, as given to
    `encode`) over a board of sort keys `key_length` long; `invalid_page_token` if it is not
    a token of ours or of another request."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        version, digest, (year, number), after = body["v"], body["r"], body["m"], body["k"]
    except (ValueError, TypeError, KeyError, binascii.Error) as error:
        raise invalid_page_token("not a page token of this method") from error
    if version != VERSION or not _is_sort_key(after, key_length) or not _is_month(year, number):
        raise invalid_page_token("not a page token of this method")
    if digest != _digest(request):
        raise invalid_page_token(
            "it continues a list with another type, group, month or not_ranked; start again"
            " without a token"
        )
    return Continuation(Month(year, number), tuple(after))


def _digest(request: Hashable) -> str:
    return hashlib.sha256(repr(request).encode()).hexdigest()[:16]


def _is_sort_key(value: object, length: int) -> bool:
    """Numbers, then a user id: the shape of the board's keys, so comparing never fails."""
    if not isinstance(value, list) or len(value) != length:
        return False
    *numbers, user_id = value
    return isinstance(user_id, str) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in numbers
    )


def _is_month(year: object, number: object) -> bool:
    return isinstance(year, int) and isinstance(number, int) and 1 <= number <= 12
