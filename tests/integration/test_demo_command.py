"""`podium demo` without a Podium to talk to says so and what to do, and sends nothing (the
demo itself, end to end: tests/e2e/test_demo.py)."""

from __future__ import annotations

import pytest

from consumers.local_broker import free_port
from service.cli import main


def test_the_demo_without_a_running_podium_says_to_start_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"127.0.0.1:{free_port()}"
    code = main(["demo", "--within", "1"], env={"PODIUM_GRPC_ADDRESS": address})
    error = capsys.readouterr().err
    assert code == 1  # a runtime failure: nothing answers
    assert f"no Podium answers on {address}: start one with `make run`" in error
    assert "PODIUM_GRPC_ADDRESS" in error
