"""Generate the Python code of `protos/` into `service/gen` (messages, gRPC stubs and their
type stubs): `make proto` runs it, and so does a wheel build from a clean checkout
(`setup.py`), so the wheel always holds the generated modules.

protoc writes `from podium.v1 import x_pb2`; the imports are rewritten so the generated
modules live inside the `service` package (`service.gen.podium...`).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "service" / "gen"
_IMPORT = re.compile(r"^(from|import) podium\.", re.MULTILINE)


def generate(protos: Path = PROTOS, gen: Path = GEN) -> list[Path]:
    """Generate every .proto under `protos` into `gen`; returns the files written."""
    from grpc_tools import protoc  # a build requirement, imported only when generating

    sources = sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))
    shutil.rmtree(gen / "podium", ignore_errors=True)
    include = Path(protoc.__file__).parent / "_proto"
    arguments = [
        "grpc_tools.protoc",
        f"-I{protos}",
        f"-I{include}",
        f"--python_out={gen}",
        f"--pyi_out={gen}",
        f"--grpc_python_out={gen}",
        f"--plugin=protoc-gen-mypy_grpc={_mypy_grpc_plugin()}",
        f"--mypy_grpc_out={gen}",
        *sources,
    ]
    if protoc.main(arguments) != 0:
        raise SystemExit("protoc failed")
    written = sorted(p for p in (gen / "podium").rglob("*") if p.suffix in (".py", ".pyi"))
    for path in written:
        path.write_text(_IMPORT.sub(r"\1 service.gen.podium.", path.read_text()))
    for folder in [gen / "podium", *(p for p in (gen / "podium").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return written


def _mypy_grpc_plugin() -> str:
    """mypy-protobuf's gRPC plugin, beside this Python or on the PATH."""
    beside = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    found = str(beside) if beside.exists() else shutil.which("protoc-gen-mypy_grpc")
    if found is None:
        raise SystemExit("protoc-gen-mypy_grpc not found: install mypy-protobuf")
    return found


if __name__ == "__main__":
    print(f"generated {len(generate())} files into {GEN.relative_to(ROOT)}")
