"""The table "Bad input → what you get" (docs/errors.md) names a test for every row: each must exist.

A renamed or deleted test would otherwise leave a row that no test checks any more.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ERRORS_PAGE = TESTS.parent / "docs" / "errors.md"
REFERENCE = re.compile(r"`([\w/]+\.py)::([\w:]+)`")


def table_rows() -> list[str]:
    text = ERRORS_PAGE.read_text(encoding="utf-8")
    section = text.split("## Bad input → what you get", 1)[1].split("\n## ", 1)[0]
    return [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| bad input")
    ]


def defined_names(path: Path) -> set[str]:
    """``test`` and ``Class`` and ``Class::test`` for every function and class in ``path``."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
    return names


def test_every_row_names_tests_that_exist():
    rows = table_rows()
    assert len(rows) >= 30, "the table was not found where expected"
    missing = []
    for row in rows:
        references = REFERENCE.findall(row.rsplit("|", 2)[-2])  # the last column
        assert references, f"a row names no test: {row[:80]}"
        for file, name in references:
            path = TESTS / file
            if not path.is_file() or name not in defined_names(path):
                missing.append(f"{file}::{name}")
    assert not missing, f"docs/errors.md names tests that do not exist: {missing}"


@pytest.mark.parametrize("name", ["test_missing_connection", "TestNoSuchClass::test_x"])
def test_the_check_would_notice_a_missing_test(name):
    known = defined_names(TESTS / "security" / "test_bad_input.py")
    assert (name in known) is (name == "test_missing_connection")
