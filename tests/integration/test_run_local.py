"""`podium run-local` (`make run`) starts its broker on a fixed address, and says so plainly
when that address is taken (the demo end to end, tests/e2e/test_demo.py, runs it on one)."""

from __future__ import annotations

import socket

import pytest

from service.cli import main


def test_a_taken_broker_address_stops_make_run_at_once_naming_the_address_and_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        code = main(
            ["run-local"], env={"PODIUM_LOCAL_BROKER_ADDRESS": address, "DATABASE_URL": "sqlite://"}
        )
    error = capsys.readouterr().err
    assert code == 2
    assert f"the local broker's address {address} cannot be listened on" in error
    assert "PODIUM_LOCAL_BROKER_ADDRESS" in error
