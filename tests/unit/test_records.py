from __future__ import annotations

from datetime import UTC, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.adapters.stores.dead_letters import decode_headers, encode_headers
from service.app.records import EPOCH, Rejected, arrival_at, moment_at
from service.domain.bounds import ID_MAX_LENGTH, REASON_MAX_LENGTH, TENANT_ID_MAX_LENGTH
from tests import profiles


def test_a_rejection_keeps_valid_ids_and_drops_the_ones_no_column_could_hold() -> None:
    assert Rejected("r", "acme", "e1") == Rejected("r", "acme", "e1")
    assert (Rejected("r", "acme", "e1").tenant_id, Rejected("r", "acme", "e1").event_id) == (
        "acme",
        "e1",
    )
    for bad in ("", "a\x00b", "x" * (ID_MAX_LENGTH + 1), "\U0001f600" * 151, "\ud800"):
        rejected = Rejected("r", bad, bad)
        assert (rejected.tenant_id, rejected.event_id) == (None, None), repr(bad)
    longest_tenant = "t" * TENANT_ID_MAX_LENGTH
    assert Rejected("r", longest_tenant).tenant_id == longest_tenant
    assert Rejected("r", longest_tenant + "t").tenant_id is None
    assert Rejected("r", None, "e" * ID_MAX_LENGTH).event_id == "e" * ID_MAX_LENGTH


def test_a_rejection_reason_is_cut_to_its_bound_and_escapes_nul_and_lone_surrogates() -> None:
    assert Rejected("bad \x00 value \ud800").reason == "bad \\x00 value \\ud800"
    long = Rejected("why " * 1_000).reason
    assert len(long) == REASON_MAX_LENGTH
    assert long.endswith("…")
    assert Rejected("short").reason == "short"


def test_headers_without_a_value_are_kept_as_such_in_the_dead_letter_store() -> None:
    headers = (("content-type", b"application/json"), ("x-empty", None), ("x-bytes", b"\xff\x00"))
    assert decode_headers(encode_headers(headers)) == headers


@settings(max_examples=profiles.examples(400), deadline=None)
@given(st.integers(-62_135_596_800, 253_402_300_799), st.integers(0, 999_999))
@example(0, 0)
@example(2**35 - 1, 999_999)
@example(2**35, 1)
@example(-1, 999_999)
def test_a_moment_after_the_epoch_is_the_epoch_plus_its_seconds(seconds: int, micros: int) -> None:
    moment = moment_at(seconds, micros)
    assert moment == EPOCH + timedelta(seconds=seconds, microseconds=micros)
    assert moment.tzinfo is UTC
    milliseconds = seconds * 1000 + micros // 1000
    if -62_135_596_800_000 <= milliseconds < 253_402_300_799_000:
        assert arrival_at(milliseconds) == EPOCH + timedelta(milliseconds=milliseconds)


@settings(max_examples=profiles.examples(200), deadline=None)
@given(st.lists(st.integers(1_700_000_000_000, 1_700_000_003_000), min_size=1, max_size=40))
def test_arrivals_in_a_row_are_each_the_epoch_plus_their_milliseconds(stamps: list[int]) -> None:
    # Records come in runs of one second: the second's moment is remembered between calls.
    for milliseconds in sorted(stamps) + stamps + [0]:
        assert arrival_at(milliseconds) == EPOCH + timedelta(milliseconds=milliseconds)
