"""API keys: made with a visible id, listed without their secret, revoked, expiring
(docs/rules.md#api-keys)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from service.app.keys import UnknownKey, create_key, find_key, list_keys, revoke_key
from service.domain.auth import ApiKey, hash_key
from tests.fake_keys import FakeKeyStore

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)


def test_a_key_carries_its_id_before_its_256_bit_secret() -> None:
    store = FakeKeyStore()
    key = create_key(store, "acme", "ranking,tasks", NOW)
    match = re.fullmatch(r"pod_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", key)
    assert match is not None
    [listed] = list_keys(store)
    assert listed.key_id == match.group(1)
    assert (listed.tenant_id, listed.scopes) == ("acme", frozenset({"ranking", "tasks"}))
    assert listed.created_at == NOW
    assert store.keys[listed.key_id][1] == hash_key(key)


def test_listing_never_shows_a_secret_and_filters_by_tenant() -> None:
    store = FakeKeyStore()
    acme = create_key(store, "acme", "ranking", NOW)
    create_key(store, "globex", "paths", NOW + timedelta(seconds=1))
    assert [k.tenant_id for k in list_keys(store)] == ["acme", "globex"]
    assert [k.tenant_id for k in list_keys(store, "globex")] == ["globex"]
    secret = acme.split("_", 2)[2]
    assert all(secret not in repr(k) for k in list_keys(store))


def test_a_revoked_key_is_found_but_not_usable_and_revoking_again_keeps_the_first_time() -> None:
    store = FakeKeyStore()
    key = create_key(store, "acme", "ranking", NOW)
    key_id = list_keys(store)[0].key_id
    revoke_key(store, key_id, NOW + timedelta(hours=1))
    again = revoke_key(store, key_id, NOW + timedelta(hours=2))
    assert again.revoked_at == NOW + timedelta(hours=1)
    found = find_key(store, key)
    assert found is not None
    assert not found.usable(NOW + timedelta(hours=1))


def test_revoking_an_unknown_id_says_so() -> None:
    with pytest.raises(UnknownKey, match="nope"):
        revoke_key(FakeKeyStore(), "nope", NOW)


def test_a_key_made_to_expire_works_until_its_expiry_and_not_from_it() -> None:
    store = FakeKeyStore()
    key = create_key(store, "acme", "ranking", NOW, expires_in=timedelta(days=90))
    found = find_key(store, key)
    assert found is not None
    assert found.expires_at == NOW + timedelta(days=90)
    assert found.usable(NOW + timedelta(days=90) - timedelta(microseconds=1))
    assert not found.usable(NOW + timedelta(days=90))


@pytest.mark.parametrize(
    ("tenant", "scopes", "expires_in"),
    [
        (" ", "ranking", None),
        ("t" * 181, "ranking", None),
        ("acme", "ranking,billing", None),
        ("acme", "", None),
        ("acme", "ranking", timedelta(0)),
    ],
)
def test_a_key_needs_a_tenant_known_scopes_and_a_future_expiry(
    tenant: str, scopes: str, expires_in: timedelta | None
) -> None:
    with pytest.raises(ValueError, match=r"."):
        create_key(FakeKeyStore(), tenant, scopes, NOW, expires_in)


@pytest.mark.parametrize(
    "presented",
    ["", "pod_", "x" * 64, "pod_0123456789abcdef_short", "pod_" + "k" * 44, "pod_" + "é" * 43],
)
def test_a_string_not_shaped_like_a_key_is_refused_without_asking_the_store(
    presented: str,
) -> None:
    store = FakeKeyStore()
    assert find_key(store, presented) is None
    assert store.finds == 0


def test_a_key_made_before_keys_had_ids_is_still_found() -> None:
    store = FakeKeyStore()
    old = "pod_" + "A" * 43
    store.add(ApiKey(hash_key(old)[:16], "acme", frozenset({"ranking"}), NOW), hash_key(old))
    found = find_key(store, old)
    assert found is not None
    assert found.key_id == hash_key(old)[:16]
