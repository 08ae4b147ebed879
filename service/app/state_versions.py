"""The names of the state's versions. Every batch moves the version of each part of the state
it changed; API instances watch them to know when a cached answer is stale.

A tenant's version moves with any change of its state; finer parts let big answers that
depend on one part (a month's ranking) stay cached while the rest changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.domain.ranking import Month

SEPARATOR = "\x1f"


def tenant_key(tenant_id: str) -> str:
    """Anything of a tenant."""
    return tenant_id


def profiles_key(tenant_id: str) -> str:
    """Profiles and group membership of a tenant."""
    return f"{tenant_id}{SEPARATOR}profiles"


def month_key(tenant_id: str, month: Month) -> str:
    """A tenant's driver months of one calendar month."""
    return f"{tenant_id}{SEPARATOR}month{SEPARATOR}{month.year}-{month.number:02d}"


def shard_key(key: str, shard: int) -> str:
    """One shard of a part of the state (`service.app.shards`): as the answers' versions name
    it; the part's version is the sum of its own and its shards'."""
    return f"{key}{SEPARATOR}shard{SEPARATOR}{shard}"


def shards_of(numbers: Mapping[str, int], key: str) -> dict[int, int]:
    """The versions of `key`'s shards among `numbers` (by `shard_key`)."""
    prefix = shard_key(key, 0)[:-1]
    return {
        int(name[len(prefix) :]): number
        for name, number in numbers.items()
        if name.startswith(prefix)
    }


def keys_key() -> str:
    """The API keys: moved by every key created or revoked, so API instances forget what
    they cached about keys. It starts with the separator, so no tenant's key can be it."""
    return f"{SEPARATOR}keys"


def month_of_key(key: str) -> tuple[str, Month] | None:
    """The tenant and month a `month_key` names (None: the key names something else, a shard
    of a month's version included)."""
    tenant, sep, rest = key.partition(f"{SEPARATOR}month{SEPARATOR}")
    if not sep or not tenant or SEPARATOR in rest:
        return None  # not a month, or a shard of one
    year, _, number = rest.partition("-")
    return tenant, Month(int(year), int(number))


def tenant_of_key(key: str) -> str | None:
    """The tenant a `tenant_key` names (None: the key names something finer, or no tenant)."""
    return None if SEPARATOR in key else key
