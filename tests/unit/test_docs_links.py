"""Every `docs/rules.md` citation the code, the tests and the docs make names a section that
exists (`docs/rules.md#section`, or `docs/rules.md, "Heading"`), so a renamed section cannot
leave readers at a dead link; and none cites the product spec, a file the repository does not
have."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"docs/rules\.md#([a-z0-9-]+)")
CITED_BY_HEADING = re.compile(r'docs/rules\.md, "([^"]+)"')
SPEC = re.compile(r"(?-i:\bSPEC\b)|SPEC\.md|\bspec section|\bthe spec\b", re.IGNORECASE)
"""A citation of the product spec (`UNSPECIFIED` enum values and `...-spec` package names are
not: see the test of this pattern)."""


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def headings() -> set[str]:
    rules = (ROOT / "docs" / "rules.md").read_text()
    return set(re.findall(r"^#+ (.*)$", rules, re.MULTILINE))


def cited_files() -> list[Path]:
    """The docs and the code, this file aside (its docstrings show the citations' forms)."""
    this = Path(__file__).resolve()
    files = [
        *ROOT.glob("README.md"),
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("bench/*.md"),
        *(
            p
            for d in ("service", "consumers", "bench", "migrations", "tests", "tools")
            for p in ROOT.glob(f"{d}/**/*.py")
        ),
    ]
    assert len(files) > 100, "the paths are wrong"
    return [p for p in files if p.resolve() != this]


def test_every_cited_section_of_the_rules_exists() -> None:
    sections = {slug(h) for h in headings()}
    files = cited_files()
    cited = {(p.relative_to(ROOT), a) for p in files for a in CITED.findall(p.read_text())}
    assert cited, "no citation found: the pattern or the paths are wrong"
    assert sorted((str(p), a) for p, a in cited if a not in sections) == []


def test_every_heading_cited_by_name_exists() -> None:
    named = {
        (str(p.relative_to(ROOT)), h)
        for p in cited_files()
        for h in CITED_BY_HEADING.findall(p.read_text())
    }
    assert named, "no citation found: the pattern or the paths are wrong"
    assert sorted((p, h) for p, h in named if h not in headings()) == []


def test_the_code_cites_the_rules_never_the_spec() -> None:
    citing = {
        f"{p.relative_to(ROOT)}:{n}"
        for p in cited_files()
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if SPEC.search(line)
    }
    assert sorted(citing) == []


def test_a_citation_of_the_spec_is_recognised_and_an_enum_value_is_not() -> None:
    assert SPEC.search("the key the SPEC names")
    assert SPEC.search("(SPEC section 2)")
    assert SPEC.search("see spec section 4")
    assert not SPEC.search("paths_pb2.PATH_RESULT_UNSPECIFIED")
    assert not SPEC.search("a spectator")
    assert SPEC.search("Rules where the spec is silent")
    assert not SPEC.search('"geronimo-annotation-1.3-spec",')
