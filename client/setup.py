"""The client wheel holds the generated code of the repository's `protos/` (never committed):
it is generated here, before setuptools looks for packages, whenever the protos are at hand
(a checkout). Everything else is in pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import setup

REPOSITORY = Path(__file__).resolve().parent.parent
if (REPOSITORY / "protos").is_dir() and (REPOSITORY / "tools" / "protogen.py").is_file():
    spec = importlib.util.spec_from_file_location("protogen", REPOSITORY / "tools" / "protogen.py")
    assert spec is not None
    assert spec.loader is not None
    protogen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protogen)
    protogen.generate()

setup()
