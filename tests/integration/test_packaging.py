"""The two wheels built from a clean checkout (tracked files only, nothing generated): the
client's (`make client`) holds the code generated from every .proto, with its type stubs,
the .proto files and the service config, depends on grpcio, protobuf and
googleapis-common-protos only, no older than the generated code needs; Podium's requires the
client of its own version and holds no generated code of its own. Both say which Pythons
they run on."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.wheels import build_wheel, clean_checkout

ROOT = Path(__file__).parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def metadata(archive: zipfile.ZipFile) -> str:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    return archive.read(name).decode()


def requires(archive: zipfile.ZipFile) -> dict[str, Requirement]:
    found = (
        Requirement(line.split(":", 1)[1])
        for line in metadata(archive).splitlines()
        if line.startswith("Requires-Dist:")
    )
    return {r.name: r for r in found if r.marker is None}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = clean_checkout(tmp_path_factory.mktemp("checkout"))
    assert not (source / "client" / "podium").exists()
    return source


def test_the_client_wheel_holds_the_generated_code_the_protos_and_the_service_config(
    checkout: Path, tmp_path: Path
) -> None:
    wheel = build_wheel(checkout / "client", tmp_path / "dist")
    assert wheel.name.startswith(f"podium_client-{VERSION}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "Requires-Python: >=3.11" in metadata(archive)
        assert set(requires(archive)) == {"grpcio", "protobuf", "googleapis-common-protos"}
        for proto in (ROOT / "protos").rglob("*.proto"):
            stem = f"{proto.relative_to(ROOT / 'protos').with_suffix('')}"
            generated = {f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"}
            assert generated | {f"{stem}_pb2_grpc.pyi", f"{stem}.proto"} <= names, stem
        assert {"podium/py.typed", "podium_client/py.typed"} <= names
        assert "podium_client/service_config.json" in names
        assert not any(n.startswith(("service/", "consumers/", "migrations/")) for n in names)
        archive.extractall(tmp_path / "unpacked")
    probe = (
        "import podium.v1.driver_ranking_pb2_grpc as m, podium, podium_client; "
        "print(podium.__file__); print(m.DriverRankingServiceStub.__name__); "
        "print(len(podium_client.service_config()['methodConfig']))"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path / 'unpacked')!r}); {probe}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    where, stub, configs = run.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "unpacked")
    assert (stub, configs) == ("DriverRankingServiceStub", "3")


def test_the_clients_requirements_admit_no_runtime_older_than_its_generated_code(
    checkout: Path, tmp_path: Path
) -> None:
    """The generated modules refuse a grpcio older than the grpcio-tools that wrote them and
    a protobuf older than its protoc's: the wheel must not promise them."""
    wheel = build_wheel(checkout / "client", tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        wanted = requires(archive)
        grpc_code = archive.read("podium/v1/tasks_pb2_grpc.py").decode()
        message_code = archive.read("podium/v1/tasks_pb2.py").decode()
    [grpc_generated] = re.findall(r"GRPC_GENERATED_VERSION = '([^']+)'", grpc_code)
    [protobuf_generated] = re.findall(r"# Protobuf Python Version: (\S+)", message_code)
    for name, generated in (("grpcio", grpc_generated), ("protobuf", protobuf_generated)):
        floors = [Version(s.version) for s in wanted[name].specifier if s.operator == ">="]
        assert floors, name
        assert max(floors) >= Version(generated), (name, generated)


def test_podiums_wheel_requires_the_client_of_its_version_and_holds_no_generated_code(
    checkout: Path, tmp_path: Path
) -> None:
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    assert client["version"] == VERSION
    wheel = build_wheel(checkout, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "Requires-Python: >=3.11" in metadata(archive)
        assert str(requires(archive)["podium-client"].specifier) == f"=={VERSION}"
    assert not any(n.startswith(("podium/", "podium_client/")) for n in names)
    assert any(n.startswith("service/") for n in names)
