"""A newcomer's two commands: `make run` (`podium run-local`: its own broker on a fixed
address, SQLite) in one terminal and `podium demo` in another; every command the demo prints
then answers as written, with a ranking that has entries. Running the demo again reuses its
key and changes nothing."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.local_broker import free_port

pytestmark = [pytest.mark.e2e]

PODIUM = str(Path(sys.executable).parent / "podium")
STEP_SECONDS = 120


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """`make run`'s defaults, on ports of the test's own, in a folder of its own."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    return {
        **env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'podium.db'}",
        "PODIUM_LOCAL_BROKER_ADDRESS": f"127.0.0.1:{free_port()}",
        "PODIUM_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
    }


@pytest.fixture
def make_run(environment: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`podium run-local` as `make run` starts it, stopped with SIGTERM at the end."""
    with (tmp_path / "run-local.log").open("wb") as log:
        process = subprocess.Popen(
            [PODIUM, "run-local"], env=environment, cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def podium(environment: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PODIUM, *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )


def commands(printed: str) -> list[list[str]]:
    """The commands the demo printed, as a shell would split them (comments left out)."""
    return [shlex.split(line) for line in printed.splitlines() if line and not line.startswith("#")]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=STEP_SECONDS, check=False
    )


def test_make_run_then_the_demo_gives_a_ranking_with_entries_and_commands_that_answer(
    make_run: subprocess.Popen[bytes], environment: dict[str, str], tmp_path: Path
) -> None:
    demo = podium(environment, tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr + (tmp_path / "run-local.log").read_text()
    assert "made a key of tenant 'demo'" in demo.stderr
    printed = commands(demo.stdout)
    assert len(printed) >= 10
    answers = []
    for command in printed:
        answered = run(command)
        assert answered.returncode == 0, (command, answered.stdout, answered.stderr)
        answers.append(json.loads(answered.stdout))
    ranking = answers[0]["currentMonth"]
    assert ranking["driverRankedNumber"] > 0
    assert len(ranking["driverRanked"]) == ranking["driverRankedNumber"]
    assert answers[0]["previousMonth"]["driverRanked"]
    statuses = {answer["status"] for answer in answers if "taskId" in answer}
    assert len(statuses) == 5
    page, last_month = answers[1], answers[2]
    assert page["driverRanked"] == ranking["driverRanked"][:5]
    assert page["nextPageToken"]
    assert last_month["driverRanked"] == answers[0]["previousMonth"]["driverRanked"]
    assert answers[3]["driver"]["userId"] or answers[3]["driverNotRanked"]["userId"]
    progress, progress_page = answers[7], answers[8]
    assert progress_page["users"] == progress["users"][:5]
    assert "nextPageToken" not in progress
    assert all("asOf" in answer for answer in answers)

    again = podium(environment, tmp_path, "demo")
    assert again.returncode == 0, again.stderr
    assert "reusing the key of tenant 'demo'" in again.stderr
    assert commands(again.stdout) == printed
    assert json.loads(run(printed[0]).stdout) == answers[0]
    letters = podium(environment, tmp_path, "dlq", "list", "--json")
    assert (letters.returncode, letters.stdout) == (0, "")
    assert make_run.poll() is None  # still serving
