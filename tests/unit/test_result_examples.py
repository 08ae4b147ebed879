"""docs/events.md, "Results": each example is a `ResultEvent` exactly as Podium writes it in
JSON, under the event id its window derives."""

from __future__ import annotations

import json
import re
from pathlib import Path

from google.protobuf import json_format
from podium.events.v1 import results_pb2

from service.domain.events import ScoreKind
from service.domain.ranking import Month
from service.domain.results import ChallengeWindow, MonthWindow, result_event_id

PAGE = Path(__file__).parents[2] / "docs" / "events.md"


def examples() -> list[str]:
    section = PAGE.read_text().split("\n## Results\n", 1)[1]
    return re.findall(r"```json\n([^\n]*)\n```", section)


def test_each_results_example_is_a_result_event_as_podium_writes_it() -> None:
    found = examples()
    assert len(found) == 2
    for line in found:
        event = json_format.Parse(line, results_pb2.ResultEvent())  # no unknown field
        assert json_format.MessageToDict(event) == json.loads(line)


def test_each_results_example_carries_the_event_id_of_its_window() -> None:
    month, challenge = (json_format.Parse(line, results_pb2.ResultEvent()) for line in examples())

    october = MonthWindow("acme", Month(2026, 10), ScoreKind.SAFETY)
    assert month.event_id == result_event_id(october)
    assert challenge.event_id == result_event_id(ChallengeWindow("acme", "winter-safety"))
