"""Which topic configs can lose the events a rebuild needs (`consumers.topic_configs`), and what
Podium creates its topics with (`consumers.topics.creation_configs`)."""

from __future__ import annotations

import pytest

from consumers.topic_configs import DURABLE, REBUILD_LOSES, SettingCheck, check_settings
from consumers.topics import creation_configs
from service.config import Settings


def verdicts(configs: dict[str, str]) -> dict[str, tuple[bool, bool]]:
    """Each checked setting: (known, risky)."""
    return {c.setting: (c.known, c.risky) for c in check_settings(configs)}


def test_what_podium_creates_its_topics_with_is_durable() -> None:
    assert verdicts(DURABLE) == {setting: (True, False) for setting in DURABLE}
    assert verdicts({**DURABLE, "segment.ms": "1000"}) == verdicts(DURABLE)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        (
            "retention.ms",
            "604800000",
            "retention.ms=604800000 (7 days): the broker deletes records",
        ),
        ("retention.ms", "0", "retention.ms=0 (0 ms)"),
        ("retention.ms", "5400000", "(1.5 hours)"),
        ("retention.bytes", "1073741824", "retention.bytes=1073741824: the broker deletes a"),
        ("cleanup.policy", "compact", "cleanup.policy=compact: compaction keeps only the newest"),
        ("cleanup.policy", "delete, Compact", "cleanup.policy=delete, Compact: compaction"),
    ],
)
def test_finite_retention_or_compaction_is_a_risk_named_with_its_value(
    setting: str, value: str, words: str
) -> None:
    [check] = [c for c in check_settings({**DURABLE, setting: value}) if c.setting == setting]
    assert check.risky
    assert check.risk is not None
    assert words in check.risk
    assert REBUILD_LOSES in check.risk
    others = [c for c in check_settings({**DURABLE, setting: value}) if c.setting != setting]
    assert not any(c.risky for c in others)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("retention.ms", "-1"),
        ("retention.ms", "-2"),
        ("retention.bytes", "-1"),
        ("cleanup.policy", "delete"),
        ("cleanup.policy", " DELETE "),
    ],
)
def test_no_deletion_by_age_or_size_and_no_compaction_is_fine(setting: str, value: str) -> None:
    assert verdicts({**DURABLE, setting: value})[setting] == (True, False)


def test_a_setting_the_broker_does_not_report_is_unknown_not_risky() -> None:
    assert check_settings({}) == [SettingCheck(setting, None) for setting in DURABLE]
    assert verdicts({"cleanup.policy": "compact"}) == {
        "retention.ms": (False, False),
        "retention.bytes": (False, False),
        "cleanup.policy": (True, True),
    }


def test_topics_are_created_to_keep_every_event_and_with_replicas_min_insync_replicas() -> None:
    assert creation_configs(Settings()) == {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
    }
    replicated = Settings.from_env(
        {"PODIUM_TOPIC_REPLICATION_FACTOR": "3", "PODIUM_TOPIC_MIN_INSYNC_REPLICAS": "2"}
    )
    assert creation_configs(replicated) == {**DURABLE, "min.insync.replicas": "2"}
