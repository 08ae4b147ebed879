"""Generate the Python code of `protos/` into `client/podium` (messages, gRPC stubs and their
type stubs, beside the .proto files themselves): the top-level package `podium` of the
client distribution (`client/`), which the server imports too, so there is one generation
for both. `make proto` runs it, and so does a build of the client from a checkout
(`client/setup.py`), so its wheel always holds the generated modules.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "client"


def generate(protos: Path = PROTOS, gen: Path = GEN) -> list[Path]:
    """Generate every .proto under `protos` into the package `podium` under `gen`; returns
    the files written."""
    from grpc_tools import protoc  # a build requirement, imported only when generating

    sources = sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))
    package = gen / "podium"
    shutil.rmtree(package, ignore_errors=True)
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
    for source in sources:  # the contracts themselves, for callers generating other code
        shutil.copyfile(protos / source, gen / source)
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (package / "py.typed").touch()
    return sorted(p for p in package.rglob("*") if p.is_file())


def _mypy_grpc_plugin() -> str:
    """mypy-protobuf's gRPC plugin, beside this Python or on the PATH."""
    beside = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    found = str(beside) if beside.exists() else shutil.which("protoc-gen-mypy_grpc")
    if found is None:
        raise SystemExit("protoc-gen-mypy_grpc not found: install mypy-protobuf")
    return found


if __name__ == "__main__":
    print(f"generated {len(generate())} files into {(GEN / 'podium').relative_to(ROOT)}")
