"""The names vulture is told to ignore are exactly those it would report: what frameworks call
(pyproject.toml, [tool.vulture]). A name no longer defined, or used by our code since, leaves
the list; dead code a listed name would hide cannot creep in under it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from vulture import Vulture

ROOT = Path(__file__).resolve().parents[2]


def test_the_ignored_names_are_the_ones_vulture_would_report() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["vulture"]
    scan = Vulture(ignore_decorators=config["ignore_decorators"])
    scan.scavenge([str(ROOT / path) for path in config["paths"]], exclude=config["exclude"])
    reported = {item.name for item in scan.get_unused_code(config["min_confidence"])}
    assert reported == set(config["ignore_names"])
