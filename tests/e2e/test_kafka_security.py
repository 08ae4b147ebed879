"""The Kafka security settings reach the real client: SASL is offered to the broker (the
local one supports none, and says so), and the password shows nowhere in what Podium logs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from service.local_broker import LocalBroker
from tests.conftest import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess

pytestmark = [pytest.mark.e2e]

PASSWORD = "hunter2-very-secret"


async def test_sasl_settings_reach_the_broker_and_the_password_is_never_logged(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        settings = replace(
            isolated_settings(broker, url),
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="podium",
            kafka_sasl_password=PASSWORD,
        )
        async with ServeProcess(
            settings, tmp_path / "serve.log", env={"PODIUM_LOG_FORMAT": "json"}
        ) as serve:
            code = await serve.exited(within=60)
            output = serve.log()
    assert code == 1
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any("UnsupportedSaslMechanism" in line["message"] for line in lines)
    assert lines[-1]["level"] == "CRITICAL"
    assert "KafkaConnectionError" in lines[-1]["exc_info"]
    assert PASSWORD not in output
