"""docs/events.md: every example is a record Podium folds, sent to the topic and with the key
the page names beside it, and every event of the contracts has one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from consumers.decode import ENVELOPES
from consumers.publish import EVENT_FAMILIES, from_json_line
from service.app.records import Rejected
from service.config import Settings

PAGE = Path(__file__).parents[2] / "docs" / "events.md"
EXAMPLE = re.compile(
    r"^### `(?P<event>\w+)`\n.*?^Topic `(?P<topic>[^`]+)`, key `(?P<key>[^`]+)`.*?\n\n"
    r"```json\n(?P<line>[^\n]*)\n```",
    re.MULTILINE | re.DOTALL,
)
PROTO_NAMES = {
    field.json_name: field.name
    for envelope in ENVELOPES.values()
    for field in envelope.DESCRIPTOR.oneofs_by_name["event"].fields
}
"""Each event's JSON name (`tripCompleted`) to its name in the contracts (`trip_completed`)."""
NOW_MS = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp() * 1000)


def examples() -> list[re.Match[str]]:
    return list(EXAMPLE.finditer(PAGE.read_text()))


def test_every_example_is_read_by_the_decoder_and_goes_to_its_topic_with_its_key() -> None:
    settings = Settings()
    for example in examples():
        outgoing = from_json_line(example["line"], NOW_MS)
        assert not isinstance(outgoing, Rejected), (example["event"], outgoing)
        assert settings.topic(outgoing.family) == example["topic"], example["event"]
        assert outgoing.key.decode() == example["key"], example["event"]
        [held] = [name for name in json.loads(example["line"]) if name in EVENT_FAMILIES]
        assert PROTO_NAMES.get(held, held) == example["event"]


def test_every_event_of_the_contracts_has_one_example() -> None:
    events = [example["event"] for example in examples()]
    assert sorted(events) == sorted(PROTO_NAMES.values())
    assert len(events) == len(set(events))
