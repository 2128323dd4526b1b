"""The package's classes stay small (issue 10): a class over the limit is one to split."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_insidellms

#: The most lines a class may span, from its first decorator (or ``class`` line) to its end.
MAX_CLASS_LINES = 200

PACKAGE = Path(pytest_insidellms.__file__).parent


def span(node: ast.ClassDef) -> int:
    assert node.end_lineno is not None
    first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
    return node.end_lineno - first + 1


def class_lengths() -> dict[str, int]:
    lengths: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                where = f"{path.relative_to(PACKAGE.parent).as_posix()}:{node.lineno} {node.name}"
                lengths[where] = span(node)
    return lengths


def test_the_measure_counts_every_line_of_a_class() -> None:
    source = ("import dataclasses\n\n@dataclasses.dataclass\nclass A:\n    x: int = 1\n\n"
              "    class B:\n        y: int = 2\n\nz = 3\n")
    outer = ast.parse(source).body[1]
    assert isinstance(outer, ast.ClassDef)
    inner = outer.body[1]
    assert isinstance(inner, ast.ClassDef)
    # The decorator, the class line, a field, the blank line and the nested class.
    assert span(outer) == 6
    assert span(inner) == 2
    # The scan sees nested and module-level classes alike, in every subpackage.
    found = class_lengths()
    assert any(where.startswith("pytest_insidellms/session/") for where in found)
    assert any(where.endswith(" MLflowTracker") for where in found)


def test_no_class_exceeds_the_limit() -> None:
    too_long = {where: lines for where, lines in class_lengths().items()
                if lines > MAX_CLASS_LINES}
    assert not too_long, (
        f"classes over {MAX_CLASS_LINES} lines (split them along a real seam): "
        + ", ".join(f"{where} ({lines} lines)" for where, lines in sorted(too_long.items()))
    )
