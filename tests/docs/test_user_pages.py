"""What a user reads carries no internal history.

The user pages are those under "Using the provider" in mkdocs.yml's navigation, plus the README
and the CHANGELOG. They name no issue of this project, no commit hash, no "this round", no `§`
of a reference document that is not in the repository, no line numbers of Airflow's sources; the
errors table shows no test paths (they are in HTML comments, for maintainers). The nav keeps
users' and maintainers' pages apart.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAINTAINER_PAGES = {"contract.md", "sandbox.md", "benchmarks.md", "development.md"}
INTERNAL = {
    "an issue of this project": re.compile(r"\bissues? \d+", re.IGNORECASE),
    "a commit hash": re.compile(r"(?<![\w/-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w-])"),
    "'this round'": re.compile(r"\bthis round\b", re.IGNORECASE),
    "a § reference": re.compile("\N{SECTION SIGN}"),
    "source line numbers": re.compile(r"\blines? \d+\b(?! (?:of|per)\b)"),
    "'never been started here'": re.compile(r"never been\s+started", re.IGNORECASE),
}


def nav_sections() -> dict[str, list[str]]:
    """The pages of each top-level section of the nav (a flat entry counts as its own section)."""
    sections: dict[str, list[str]] = {}
    current = None
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:\n", 1)[1]
    for line in nav.splitlines():
        if not line.strip() or not line.startswith(" "):
            break
        top = re.match(r"^  - ([^:]+):\s*(\S+\.md)?\s*$", line)
        if top:
            current = top[1]
            sections[current] = [top[2]] if top[2] else []
            continue
        page = re.search(r":\s*(\S+\.md)\s*$", line)
        if page and current:
            sections[current].append(page[1])
    return sections


def user_pages() -> list[Path]:
    pages = [p for name, found in nav_sections().items() if not name.startswith("Maintain") for p in found]
    return [REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs" / p for p in pages)]


def visible(text: str) -> str:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"^[ ]*```.*?^[ ]*```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_the_nav_keeps_maintainer_pages_apart() -> None:
    sections = nav_sections()
    maintainers = [pages for name, pages in sections.items() if name.startswith("Maintain")]
    assert maintainers, sections
    assert set(maintainers[0]) == MAINTAINER_PAGES
    users = [name for name in sections if name.startswith("Using")]
    assert users
    assert {"installation.md", "connection.md", "operators.md", "errors.md", "reference.md"} <= set(
        sections[users[0]]
    )


def test_user_pages_carry_no_internal_history() -> None:
    pages = user_pages()
    assert len(pages) >= 12
    problems = []
    for page in pages:
        text = visible(page.read_text(encoding="utf-8"))
        if "-->" in text:  # a comment nested in a comment ends early and shows the rest
            problems.append(f"{page.relative_to(REPO)}: '-->' outside a comment")
        for what, pattern in INTERNAL.items():
            for match in pattern.finditer(text):
                line = text[: match.start()].count("\n") + 1
                problems.append(f"{page.relative_to(REPO)}:{line}: {what}: {match[0]!r}")
    assert not problems, "\n".join(problems)


def test_the_errors_table_shows_no_test_paths() -> None:
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    table = text.split("## Bad input → what you get", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) >= 30
    assert rows[0].count("|") == 4, "three columns: bad input, what you get, retried"
    for row in rows:
        assert "::" not in visible(row), row
        assert "tests:" in row or row == rows[0], f"a row names no tests in its comment: {row[:80]}"
