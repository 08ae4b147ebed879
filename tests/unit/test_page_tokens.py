"""Page tokens continue the request they came from, and nothing else."""

from __future__ import annotations

import base64
import json

import pytest

from service.domain.errors import InvalidArgument
from service.domain.ranking import Month
from service.grpc import page_tokens

REQUEST = ("acme", "safety", "north", None, False)
MONTH = Month(2026, 11)


def test_a_token_gives_back_the_month_and_the_key_it_was_made_with() -> None:
    token = page_tokens.encode(REQUEST, MONTH, (-850, -42_000, "ann"))
    continued = page_tokens.decode(token, REQUEST, 3)
    assert (continued.month, continued.after) == (MONTH, (-850, -42_000, "ann"))
    assert token.isascii()
    assert "=" not in token


@pytest.mark.parametrize(
    "other",
    [
        ("acme", "safety", "south", None, False),
        ("acme", "eco_driving", "north", None, False),
        ("beta", "safety", "north", None, False),
        ("acme", "safety", "north", (2026, 10), False),
        ("acme", "safety", "north", None, True),
    ],
)
def test_a_token_used_with_another_request_is_refused(other: tuple[object, ...]) -> None:
    token = page_tokens.encode(REQUEST, MONTH, (-850, -42_000, "ann"))
    with pytest.raises(InvalidArgument, match="another type, group, month") as refused:
        page_tokens.decode(token, other, 3)
    assert (refused.value.reason, refused.value.metadata["field"]) == (
        "invalid_page_token",
        "page_token",
    )


def forged(**body: object) -> str:
    fields = {"v": 1, "r": "", "m": [2026, 11], "k": [-1, -2, "ann"], **body}
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 at all!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        forged(v=2),
        forged(m=[2026, 13]),
        forged(m="2026-11"),
        forged(k=[-1, "ann"]),
        forged(k=["-1", -2, "ann"]),
        forged(k=[True, -2, "ann"]),
        forged(k=[-1, -2, 3]),
        forged(k="ann"),
    ],
)
def test_anything_else_is_not_a_page_token(token: str) -> None:
    with pytest.raises(InvalidArgument, match="not a page token") as refused:
        page_tokens.decode(token, REQUEST, 3)
    assert refused.value.reason == "invalid_page_token"
