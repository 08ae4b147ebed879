"""The names of the state's versions. Every batch moves the version of each part of the state
it changed; API instances watch them to know when a cached answer is stale.

A tenant's version moves with any change of its state; finer parts let big answers that
depend on one part (a month's ranking) stay cached while the rest changes.
"""

from __future__ import annotations

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


def keys_key() -> str:
    """The API keys: moved by every key created or revoked, so API instances forget what
    they cached about keys. It starts with the separator, so no tenant's key can be it."""
    return f"{SEPARATOR}keys"


def month_of_key(key: str) -> tuple[str, Month] | None:
    """The tenant and month a `month_key` names (None: the key names something else)."""
    tenant, sep, rest = key.partition(f"{SEPARATOR}month{SEPARATOR}")
    if not sep or not tenant:
        return None
    year, _, number = rest.partition("-")
    return tenant, Month(int(year), int(number))


def tenant_of_key(key: str) -> str | None:
    """The tenant a `tenant_key` names (None: the key names something finer, or no tenant)."""
    return None if SEPARATOR in key else key
