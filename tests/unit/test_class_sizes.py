"""No class of the service code is over 250 lines: a class that grows past it holds more than
one concern, and gets split (as the consumer loop was)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("service", "consumers")
MAX_LINES = 250


def class_sizes(source: str) -> dict[str, int]:
    """Each class of the module (nested ones by their dotted name), with its lines from the
    `class` line (its decorators included) to its last."""
    sizes: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                name = f"{prefix}{child.name}"
                sizes[name] = (child.end_lineno or child.lineno) - first + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return sizes


def test_the_sizes_are_counted_from_the_decorator_to_the_last_line() -> None:
    source = "@dataclass\nclass A:\n    x: int\n\n    class B:\n        y: int\n\n\nz = 1\n"
    assert class_sizes(source) == {"A": 6, "A.B": 2}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_class_of_the_service_code_is_over_250_lines(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules
    too_long = {
        f"{module.relative_to(ROOT)}::{name}": size
        for module in modules
        for name, size in class_sizes(module.read_text()).items()
        if size > MAX_LINES
    }
    assert too_long == {}
