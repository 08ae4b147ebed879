"""The image (`make image-test`, left out of `make test`: it builds the image first): run as a
platform runs it, against PostgreSQL and a Kafka-protocol broker on this host, it reports
SERVING through `podium health` inside the container, answers a grpcurl call from the host,
runs as a user other than root, and on SIGTERM drains and exits 0.

`CONTAINER` is the container tool (docker, podman, or a wrapper of either); `PODIUM_IMAGE` the
image (default podium:latest)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.local_broker import LocalBroker, free_port
from service.bootstrap import storage
from service.clock import SystemClock
from tests.databases import empty_database

pytestmark = [pytest.mark.image]

IMAGE = os.environ.get("PODIUM_IMAGE", "podium:latest")
CONTAINER = shlex.split(os.environ.get("CONTAINER", "docker"))
GRPCURL = str(Path(sys.executable).parent / "grpcurl")
DRAIN_SECONDS = 2


def container(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CONTAINER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def start(name: str, env: dict[str, str]) -> None:
    """`run -d` on the host's network (the broker and PostgreSQL listen on 127.0.0.1). A tool
    that puts containers there already may refuse to be told twice: then without it."""
    settings = [f"--env={key}={value}" for key, value in env.items()]
    for network in (["--network=host"], []):
        started = container("run", "-d", "--name", name, *network, *settings, IMAGE)
        if started.returncode == 0:
            return
        container("rm", "-f", name)
    raise AssertionError(f"the image did not start: {started.stderr}")


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with empty_database("postgresql", tmp_path) as url:
        yield url


def test_the_image_serves_answers_runs_unprivileged_and_drains_on_sigterm(
    broker: LocalBroker, database_url: str
) -> None:
    run = uuid.uuid4().hex[:8]
    port = free_port()
    name = f"podium-image-test-{run}"
    start(
        name,
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "PODIUM_GRPC_ADDRESS": f"127.0.0.1:{port}",
            "PODIUM_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
            "PODIUM_TOPIC_PREFIX": f"t{run}.",
            "PODIUM_CONSUMER_GROUP": f"g{run}",
            "PODIUM_TOPIC_PARTITIONS": "2",
            "PODIUM_DRAIN_SECONDS": str(DRAIN_SECONDS),
        },
    )
    try:
        health = until_serving(name)
        assert health.stdout == f"podium at 127.0.0.1:{port}: SERVING\n"
        assert container("exec", name, "id", "-u").stdout.strip() != "0"
        assert container("exec", name, "id", "-un").stdout.strip() == "podium"

        with storage(database_url) as store:
            key = store.create_key("acme", "ranking", SystemClock().now())
        answered = subprocess.run(
            [
                *(GRPCURL, "-plaintext", "-H", f"x-api-key: {key}"),
                *("-d", '{"type": "RANKING_TYPE_SAFETY"}', f"127.0.0.1:{port}"),
                "podium.v1.DriverRankingService/GetDriverRanking",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert answered.returncode == 0, answered.stderr
        assert json.loads(answered.stdout)["type"] == "RANKING_TYPE_SAFETY"

        signalled = time.monotonic()
        assert container("kill", "--signal", "TERM", name).returncode == 0
        waited = container("wait", name, timeout=DRAIN_SECONDS + 60)
        took = time.monotonic() - signalled
        assert waited.stdout.strip() == "0", logs(name)
        print(f"\nimage {IMAGE}: {size_mb(IMAGE):.0f} MB; exited 0 {took:.1f} s after SIGTERM")
        assert "draining: NOT_SERVING" in logs(name)
    finally:
        container("rm", "-f", name)


def until_serving(name: str, within: float = 180) -> subprocess.CompletedProcess[str]:
    """`podium health` inside the container, until it says SERVING (exit code 0)."""
    deadline = time.monotonic() + within
    while True:
        checked = container("exec", name, "podium", "health")
        if checked.returncode == 0 or time.monotonic() > deadline:
            assert checked.returncode == 0, f"{checked.stdout}{checked.stderr}\n{logs(name)}"
            return checked
        time.sleep(1)


def logs(name: str) -> str:
    shown = container("logs", name)
    return shown.stdout + shown.stderr


def size_mb(image: str) -> float:
    size = container("image", "inspect", "--format", "{{.Size}}", image).stdout.strip()
    return int(size) / 1e6
