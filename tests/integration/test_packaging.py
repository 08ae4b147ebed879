"""A wheel built from a clean checkout (tracked files only, nothing generated) holds the code
generated from every .proto, importable from the wheel alone, and says which Pythons it runs
on."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def clean_checkout(into: Path) -> Path:
    """The files git knows (committed or not yet), without anything generated or ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_a_wheel_from_a_clean_checkout_holds_the_generated_code(tmp_path: Path) -> None:
    source = clean_checkout(tmp_path / "checkout")
    assert not (source / "service" / "gen" / "podium").exists()
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(tmp_path / "dist"), str(source)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = (tmp_path / "dist").glob("podium-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "Requires-Python: >=3.11" in archive.read(metadata).decode()
        for proto in (ROOT / "protos").rglob("*.proto"):
            stem = f"service/gen/{proto.relative_to(ROOT / 'protos').with_suffix('')}"
            assert {f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"} <= names, stem
        archive.extractall(tmp_path / "unpacked")
    probe = (
        "import podium.v1.driver_ranking_pb2_grpc as m, service; "
        "print(service.__file__); print(m.DriverRankingServiceStub.__name__)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "unpacked")},
        capture_output=True,
        text=True,
        check=True,
    )
    where, stub = run.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "unpacked")
    assert stub == "DriverRankingServiceStub"
