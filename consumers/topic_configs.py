"""Which topic configs let the broker delete events a rebuild of the state needs (docs/events.md,
"Topics that keep every event"). Pure: the configs as the broker reports them in, a verdict
per setting out (`consumers.topics` describes the topics and reports the verdicts)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

DURABLE = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
"""What Podium creates its topics with: no deletion by age or size, no compaction."""

REBUILD_LOSES = "a rebuild of the state from the topics would lose"


@dataclass(frozen=True, slots=True)
class SettingCheck:
    setting: str
    value: str | None
    """None: the broker does not report it (unknown, not a risk)."""
    risk: str | None = None
    """`setting=value` and how it loses events, when it can."""

    @property
    def known(self) -> bool:
        return self.value is not None

    @property
    def risky(self) -> bool:
        return self.risk is not None


def check_settings(configs: Mapping[str, str]) -> list[SettingCheck]:
    """A verdict for each setting of DURABLE, from the configs the broker reports."""
    checks = []
    for setting, risk_of in _RISKS.items():
        value = configs.get(setting)
        if value is None:
            checks.append(SettingCheck(setting, None))
            continue
        why = risk_of(value.strip())
        checks.append(
            SettingCheck(setting, value, None if why is None else f"{setting}={value}{why}")
        )
    return checks


def _retention_ms(value: str) -> str | None:
    ms = _integer(value)
    if ms is None or ms < 0:  # -1: for ever (a value that is no number: the broker's say)
        return None
    return (
        f" ({_span(ms)}): the broker deletes records older than that, and {REBUILD_LOSES} "
        "every older event"
    )


def _retention_bytes(value: str) -> str | None:
    size = _integer(value)
    if size is None or size < 0:
        return None
    return (
        f": the broker deletes a partition's oldest records beyond that size, and "
        f"{REBUILD_LOSES} them"
    )


def _cleanup_policy(value: str) -> str | None:
    if "compact" not in (policy.strip().lower() for policy in value.split(",")):
        return None
    return (
        ": compaction keeps only the newest record of each key (a driver's last trip), and "
        f"{REBUILD_LOSES} the others"
    )


_RISKS: dict[str, Callable[[str], str | None]] = {
    "retention.ms": _retention_ms,
    "retention.bytes": _retention_bytes,
    "cleanup.policy": _cleanup_policy,
}


def _integer(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _span(ms: int) -> str:
    for unit, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000)):
        if ms >= size:
            return f"{ms / size:g} {unit}"
    return f"{ms} ms"
