"""The wheel holds the generated code of `protos/` (never committed): it is generated here,
before setuptools looks for packages, whenever the protos are at hand (a checkout or the
sdist). Everything else is in pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
if (ROOT / "protos").is_dir():
    spec = importlib.util.spec_from_file_location("protogen", ROOT / "tools" / "protogen.py")
    assert spec is not None
    assert spec.loader is not None
    protogen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protogen)
    protogen.generate()

setup()
