"""Rewrite the README's table of settings ("Configuration") from their declarations in
service/config.py: `python -m tools.settings_table` (`--check`: exit 1 if it is not current)."""

from __future__ import annotations

import sys
from pathlib import Path

from service.config import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| variable | default | meaning |\n"


def readme_table(readme: str) -> tuple[int, int]:
    """Where the table of settings stands in the README's text: its first and past its last
    character."""
    section = readme.index("\n## Configuration\n")
    start = readme.index(HEADER, section)
    end = readme.find("\n\n", start)
    return start, len(readme) if end == -1 else end + 1


def main(argv: list[str]) -> int:
    readme = README.read_text()
    start, end = readme_table(readme)
    current = readme[start:end]
    wanted = settings_table()
    if current == wanted:
        return 0
    if "--check" in argv:
        print("README.md: the table of settings is not current; python -m tools.settings_table")
        return 1
    README.write_text(readme[:start] + wanted + readme[end:])
    print("README.md: the table of settings rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
