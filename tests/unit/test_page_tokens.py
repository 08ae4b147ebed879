"""Page tokens continue the request they came from, and nothing else."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from service.domain.errors import InvalidArgument
from service.domain.ranking import Month
from service.grpc import page_tokens

REQUEST = ("acme", "safety", "north", None, False)
MONTH = Month(2026, 11)


def test_a_token_gives_back_the_month_and_the_key_it_was_made_with() -> None:
    token = page_tokens.encode(REQUEST, (-850, -42_000, "ann"), MONTH)
    continued = page_tokens.decode(token, REQUEST, (3,), with_month=True)
    assert (continued.month, continued.after) == (MONTH, (-850, -42_000, "ann"))
    assert token.isascii()
    assert "=" not in token


def test_a_month_token_reads_as_it_did_before_challenges_had_pages() -> None:
    """A token handed out before the tokens were generalized still continues its list."""
    digest = hashlib.sha256(repr(REQUEST).encode()).hexdigest()[:16]
    body = {"v": 1, "r": digest, "m": [2026, 11], "k": [-850, -4, "ann"]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    before = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert page_tokens.encode(REQUEST, (-850, -4, "ann"), MONTH) == before
    assert page_tokens.decode(before, REQUEST, (3,), with_month=True).month == MONTH


RANKING = ("GetChallengeRanking", "acme", "c1", "north")


@pytest.mark.parametrize("after", [(-850, -42_000, "ann"), (-42_000, "bob")])
def test_a_challenge_token_holds_the_key_of_either_list_and_no_month(
    after: tuple[int | str, ...],
) -> None:
    token = page_tokens.encode(RANKING, after)
    assert page_tokens.decode(token, RANKING, (3, 2)) == page_tokens.Continuation(after)


@pytest.mark.parametrize(
    "other",
    [
        ("GetChallengeProgress", "acme", "c1", "north"),
        ("GetChallengeRanking", "acme", "c2", "north"),
        ("GetChallengeRanking", "acme", "c1", ""),
        ("GetChallengeRanking", "beta", "c1", "north"),
    ],
)
def test_a_challenge_token_continues_its_method_tenant_challenge_and_group_only(
    other: tuple[str, ...],
) -> None:
    token = page_tokens.encode(RANKING, (-850, -42_000, "ann"))
    with pytest.raises(InvalidArgument, match="another list") as refused:
        page_tokens.decode(token, other, (3, 2))
    assert refused.value.reason == "invalid_page_token"


def test_a_month_token_and_a_challenge_token_do_not_pass_for_each_other() -> None:
    month_token = page_tokens.encode(REQUEST, (-850, -42_000, "ann"), MONTH)
    challenge_token = page_tokens.encode(RANKING, (-850, -42_000, "ann"))
    with pytest.raises(InvalidArgument, match="another list"):
        page_tokens.decode(month_token, RANKING, (3, 2))
    with pytest.raises(InvalidArgument, match="another list"):
        page_tokens.decode(challenge_token, REQUEST, (3,), with_month=True)
    forged_month = page_tokens.encode(REQUEST, (-850, -42_000, "ann"))  # its digest, no month
    with pytest.raises(InvalidArgument, match="another list"):
        page_tokens.decode(forged_month, REQUEST, (3,), with_month=True)


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
    token = page_tokens.encode(REQUEST, (-850, -42_000, "ann"), MONTH)
    with pytest.raises(InvalidArgument, match="another list") as refused:
        page_tokens.decode(token, other, (3,), with_month=True)
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
        forged(m=[2026]),
        forged(m=[2026, 11, 1]),
        base64.urlsafe_b64encode(b'"a string"').decode(),
    ],
)
def test_anything_else_is_not_a_page_token(token: str) -> None:
    with pytest.raises(InvalidArgument, match="not a page token") as refused:
        page_tokens.decode(token, REQUEST, (3,), with_month=True)
    assert refused.value.reason == "invalid_page_token"
