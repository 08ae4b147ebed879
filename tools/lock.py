"""The lock files in `requirements/`: every package an install takes, pinned to one version
with its hashes, so that two installs a week apart (or a laptop and the image) run the same
code. `make lock` writes them from pyproject.toml (`python tools/lock.py`); `make lint`
checks they still match it (`python tools/lock.py --check`, offline).

Each lock is one set of pyproject's requirements: the runtime (the image installs it), the
build requirements (the image builds the wheel with them), the developer's set (runtime,
`dev` and `local` extras and the build requirements: `make install`), and the bench's peer
(its own virtualenv, `.venv-peer`: it pins a librdkafka binding older than dev's). The dev
set is resolved first; the runtime and build sets are then resolved within its pins, so a
package has the same version in every set that holds it. Resolution is universal (uv's
`--universal`): one lock serves every Python from 3.11 on, with markers where a package
is needed only on some.

The client distribution (`client/pyproject.toml`, the package `podium` that Podium itself
requires) has a lock of its own, what a caller's install takes (the clean virtualenv of the
client's test installs it). A requirement on a distribution of this repository is built here,
never downloaded: in a lock it stands for that distribution's own requirements, and the build
set holds what builds it too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OLDEST_PYTHON = "3.11"
SIBLINGS = {"podium-client": "client/pyproject.toml"}
"""The distributions this repository builds, by name: their pyproject.toml."""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


@dataclass(frozen=True)
class Lock:
    path: str
    pyproject: str
    dependencies: bool = True
    """The project's own `dependencies`."""
    extras: tuple[str, ...] = ()
    build: bool = False
    """The project's `build-system.requires`, and those of the distributions of this
    repository it requires (they are built with it)."""
    within: str | None = None
    """Another lock whose pins this one keeps to (resolved first)."""

    def requirements(self) -> list[str]:
        project = _project(self.pyproject)
        wanted = list(project["project"]["dependencies"]) if self.dependencies else []
        for extra in self.extras:
            wanted += project["project"]["optional-dependencies"][extra]
        needed = _siblings(project["project"]["dependencies"])
        builds = [self.pyproject, *needed] if self.build else []
        return [
            *_downloaded(wanted),
            *(r for p in builds for r in _project(p)["build-system"]["requires"]),
        ]

    def fingerprint(self) -> str:
        """What the lock was made from: its requirements, in a stable form."""
        text = json.dumps(sorted(str(Requirement(r)) for r in self.requirements()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _project(pyproject: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / pyproject).read_text())


def _siblings(requirements: list[str]) -> list[str]:
    """The pyproject.toml of each distribution of this repository that `requirements` name,
    and of those they name in turn."""
    found: list[str] = []
    for raw in requirements:
        sibling = SIBLINGS.get(canonicalize_name(Requirement(raw).name))
        if sibling is not None:
            found += [sibling, *_siblings(_project(sibling)["project"]["dependencies"])]
    return found


def _downloaded(requirements: list[str]) -> list[str]:
    """`requirements` with each distribution of this repository replaced by its own."""
    found: list[str] = []
    for raw in requirements:
        sibling = SIBLINGS.get(canonicalize_name(Requirement(raw).name))
        if sibling is None:
            found.append(raw)
        else:
            found += _downloaded(_project(sibling)["project"]["dependencies"])
    return found


LOCKS = (
    Lock("requirements/dev.txt", "pyproject.toml", extras=("dev", "local"), build=True),
    Lock("requirements/runtime.txt", "pyproject.toml", within="requirements/dev.txt"),
    Lock(
        "requirements/build.txt",
        "pyproject.toml",
        dependencies=False,
        build=True,
        within="requirements/dev.txt",
    ),
    Lock("requirements/bench-peer.txt", "pyproject.toml", dependencies=False, extras=("bench",)),
    Lock("requirements/client.txt", "client/pyproject.toml", within="requirements/dev.txt"),
)


def _header(lock: Lock) -> str:
    return (
        f"# Pinned with hashes by `make lock` (tools/lock.py) from {lock.pyproject}, for\n"
        f"# Python {OLDEST_PYTHON} and newer; never edited by hand. "
        f"Requirements: {lock.fingerprint()}\n"
    )


def write(lock: Lock, upgrade: bool) -> None:
    target = ROOT / lock.path
    target.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        wanted = Path(folder) / "requirements.in"
        wanted.write_text("\n".join(lock.requirements()) + "\n")
        out = Path(folder) / "lock.txt"
        if target.exists() and not upgrade:
            out.write_text(target.read_text())  # its pins are kept where they still fit
        command = [
            *_uv(),
            *("pip", "compile", str(wanted), "--output-file", str(out)),
            *("--universal", "--python-version", OLDEST_PYTHON, "--generate-hashes"),
            *("--no-header", "--annotation-style", "line", "--quiet"),
            *(["--upgrade"] if upgrade else []),
            *(["--constraints", str(ROOT / lock.within)] if lock.within else []),
        ]
        subprocess.run(command, check=True, env={**os.environ, "UV_NO_CONFIG": "1"})
        body = out.read_text().replace(f"-r {wanted}", f"-r {lock.pyproject}")
    target.write_text(_header(lock) + body)
    print(f"{lock.path}: {len(pins(body))} packages")


def _uv() -> list[str]:
    beside = Path(sys.executable).parent / "uv"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "uv"]


def pins(text: str) -> dict[str, str]:
    """The pinned packages of a lock, by canonical name."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if match := _PIN.match(line):
            found[canonicalize_name(match[1])] = match[3]
    return found


def problems(lock: Lock) -> list[str]:
    """Why the lock no longer matches pyproject.toml (nothing: it does)."""
    path = ROOT / lock.path
    if not path.exists():
        return [f"{lock.path} is missing"]
    text = path.read_text()
    found: list[str] = []
    if f"Requirements: {lock.fingerprint()}\n" not in text.split("\n\n", 1)[0] + "\n":
        found.append(f"{lock.path} was made from other requirements than {lock.pyproject}'s")
    pinned = pins(text)
    for raw in lock.requirements():
        requirement = Requirement(raw)
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            found.append(f"{lock.path} does not pin {requirement.name}")
        elif not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{lock.path} pins {requirement.name}=={version}, outside {raw!r}")
    if "--hash=sha256:" not in text:
        found.append(f"{lock.path} has no hashes")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check, offline, and change nothing")
    parser.add_argument("--upgrade", action="store_true", help="take the newest versions")
    args = parser.parse_args(argv)
    if args.check:
        found = [problem for lock in LOCKS for problem in problems(lock)]
        for problem in found:
            print(f"lock: {problem}: run `make lock`", file=sys.stderr)
        return 1 if found else 0
    for lock in LOCKS:
        write(lock, args.upgrade)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
