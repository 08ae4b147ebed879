"""Go and Java callers (`make clients-test`, left out of `make test`: a few minutes): the code
`buf generate` writes from buf.gen.yaml compiles with docs/clients.md's examples, on Debian's
toolchains (tools/client-toolchains.sh installs them), and the Go example, run with the client
package's service config, answers from a live `podium serve` through its key."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from consumers.local_broker import LocalBroker
from service.bootstrap import storage
from service.clock import SystemClock
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess

pytestmark = [pytest.mark.clients]

ROOT = Path(__file__).parents[2]
BUF = str(Path(sys.executable).parent / "buf")
GOPATH_OF_DEBIAN = "/usr/share/gocode"
JARS_OF_DEBIAN = [
    f"/usr/share/java/{name}.jar"
    for name in (
        "protobuf", "grpc-api", "grpc-context", "grpc-stub", "grpc-protobuf",
        "grpc-protobuf-lite", "guava", "jsr305", "geronimo-annotation-1.3-spec",
    )
]  # fmt: skip


def example(language: str) -> str:
    """docs/clients.md's example in `language`."""
    [code] = re.findall(
        rf"```{language}\n(.*?)```", (ROOT / "docs" / "clients.md").read_text(), re.S
    )
    assert isinstance(code, str)
    return code


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{command[0]}: {done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`buf generate` of the repository's buf.gen.yaml, as a caller runs it."""
    out = tmp_path_factory.mktemp("generated")
    run([BUF, "generate", "--output", str(out)], ROOT)
    return out / "gen"


@pytest.fixture(scope="module")
def go_example(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go example built against the generated code where its go_package puts it (a
    GOPATH beside Debian's, which holds gRPC and protobuf for Go)."""
    gopath = tmp_path_factory.mktemp("gopath")
    shutil.copytree(generated / "go", gopath / "src" / "podium.internal" / "gen" / "go")
    (gopath / "src" / "ranking").mkdir()
    (gopath / "src" / "ranking" / "main.go").write_text(example("go"))
    binary = gopath / "ranking"
    env = {
        **os.environ,
        "GOPATH": f"{gopath}:{GOPATH_OF_DEBIAN}",
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "GOCACHE": str(gopath / "cache"),
    }
    run(["go", "build", "-o", str(binary), "."], gopath / "src" / "ranking", env)
    return binary


def test_the_generated_java_compiles_with_the_example(generated: Path, tmp_path: Path) -> None:
    (tmp_path / "Ranking.java").write_text(example("java"))
    sources = [str(p) for p in (generated / "java").rglob("*.java")]
    assert any(p.endswith("DriverRankingServiceGrpc.java") for p in sources)
    assert any("/internal/podium/events/v1/" in p for p in sources)
    command = ["javac", "-nowarn", "-cp", ":".join(JARS_OF_DEBIAN), "-d", str(tmp_path / "out")]
    run([*command, *sources, str(tmp_path / "Ranking.java")], tmp_path)
    assert (tmp_path / "out" / "Ranking.class").exists()
    assert (tmp_path / "out" / "internal" / "podium" / "v1" / "GetTaskRequest.class").exists()


async def test_the_go_example_answers_from_a_live_podium(
    go_example: Path, broker: LocalBroker, tmp_path: Path
) -> None:
    shutil.copy(ROOT / "client" / "podium_client" / "service_config.json", tmp_path)
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url)
        with storage(settings.database_url, migrate=True) as store:
            key = store.create_key("acme", "ranking", SystemClock().now())
        async with ServeProcess(settings, tmp_path / "serve.log") as serve:
            await serve.serving()
            process = await asyncio.create_subprocess_exec(
                str(go_example),
                serve.address,
                cwd=tmp_path,
                env={"KEY": key},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            output, errors = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, errors.decode()
    assert output.decode() == "0 drivers ranked this month\n"
