"""Names of the state versions API instances watch to know when a cached answer is stale.

Every batch bumps the version of each tenant it touched; finer scopes let big answers that
depend on part of the state (a month's ranking) stay cached while the rest changes.
"""

from __future__ import annotations

from service.domain.ranking import Month

SEPARATOR = "\x1f"


def profiles_scope(tenant_id: str) -> str:
    """Profiles and group membership of a tenant."""
    return f"{tenant_id}{SEPARATOR}profiles"


def month_scope(tenant_id: str, month: Month) -> str:
    """A tenant's driver months of one calendar month."""
    return f"{tenant_id}{SEPARATOR}month{SEPARATOR}{month.year}-{month.number:02d}"
