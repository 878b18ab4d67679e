"""One version: ``__version__``, the package metadata, the CHANGELOG and the wheel agree.

``pyproject.toml`` takes the version from ``plugins/autoenhance_provider/__init__.py`` (hatch's
``dynamic = ["version"]``); the CHANGELOG (Keep a Changelog) has an ``[Unreleased]`` section and
dated versions, the newest of which is that version. The wheel's name and metadata carry it too
(tests/deploy/test_packaging.py builds one).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION_HEADING = re.compile(
    r"^## \[(?P<version>\d+\.\d+\.\d+)\] - (?P<date>\d{4}-\d{2}-\d{2})$", re.MULTILINE
)


def package_version() -> str:
    text = (REPO / "plugins" / "autoenhance_provider" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match
    return match[1]


def test_pyproject_takes_the_version_from_the_package() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.MULTILINE)
    assert not re.search(r"^version = ", pyproject, re.MULTILINE)
    assert 'path = "plugins/autoenhance_provider/__init__.py"' in pyproject


def test_the_installed_package_has_this_version() -> None:
    import autoenhance_provider

    assert autoenhance_provider.__version__ == package_version()


def test_the_changelog_newest_version_is_the_package_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text
    assert text.index("## [Unreleased]") < text.index("\n## [", text.index("## [Unreleased]") + 1)
    headings = [m for m in re.finditer(r"^## .*$", text, re.MULTILINE) if m[0] != "## [Unreleased]"]
    assert headings, "no version in the CHANGELOG"
    for heading in headings:
        assert VERSION_HEADING.fullmatch(heading[0]), f"not '## [x.y.z] - YYYY-MM-DD': {heading[0]}"
    versions = [VERSION_HEADING.fullmatch(h[0]) for h in headings]
    assert versions[0]["version"] == package_version()
    dates = [dt.date.fromisoformat(v["date"]) for v in versions]
    assert dates == sorted(dates, reverse=True), "newest first"
    numbers = [tuple(int(p) for p in v["version"].split(".")) for v in versions]
    assert numbers == sorted(numbers, reverse=True)
    assert "(unreleased)" not in text.lower()


def test_the_docs_name_no_other_version_as_current() -> None:
    """A page that says "since/in <version>" names one the CHANGELOG has."""
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    known = {m["version"] for m in VERSION_HEADING.finditer(changelog)}
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for version in re.findall(r"\b(?:in|since|from) (\d+\.\d+\.\d+)\b", page.read_text(encoding="utf-8")):
            if version.startswith("0."):  # ours, not Airflow's or Python's
                assert version in known, f"{page.name} names {version}, which the CHANGELOG does not have"
