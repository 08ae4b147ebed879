"""Every `docs/rules.md#section` the code and the README cite names a section that exists, so
a renamed section cannot leave readers at a dead link."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"docs/rules\.md#([a-z0-9-]+)")


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def test_every_cited_section_of_the_rules_exists() -> None:
    rules = (ROOT / "docs" / "rules.md").read_text()
    sections = {slug(h) for h in re.findall(r"^#+ (.*)$", rules, re.MULTILINE)}
    files = [
        *ROOT.glob("README.md"),
        *ROOT.glob("docs/*.md"),
        *(
            p
            for d in ("service", "consumers", "bench", "migrations")
            for p in ROOT.glob(f"{d}/**/*.py")
        ),
    ]
    cited = {(p.relative_to(ROOT), a) for p in files for a in CITED.findall(p.read_text())}
    assert cited, "no citation found: the pattern or the paths are wrong"
    assert sorted((str(p), a) for p, a in cited if a not in sections) == []
