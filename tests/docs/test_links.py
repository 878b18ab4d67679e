"""No URL points to a project home that does not exist.

The project has no public repository, documentation host or PyPI page yet, so any URL that names
it (``github.com/<org>/airflow-provider-autoenhance``, ``pypi.org/project/…``, a Read the Docs
host…) is a dead link. Links between the docs are relative; ``[project.urls]`` is absent; the
OpenLineage facet keeps the schema URL its OpenLineage base class documents.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", ".venv-airflow30", "site", "dist", "build", "node_modules", "__pycache__",
             ".pytest_cache", ".mypy_cache", ".ruff_cache", "airflow_home", "output"}  # fmt: skip
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".ini", ".json", ".html", ".sh", ""}
# Any URL that names this project (its distribution or package name, or the invented organisation)
# is a URL of a home the project does not have. Written in two parts so this file does not match.
PROJECT_NAMES = ["airflow-provider-" + "autoenhance", "autoenhance-" + "airflow", "autoenhance_" + "provider"]
URL = re.compile(r"\b(?:https?://|git@|git\+)[^\s)>\]'\"`]+", re.IGNORECASE)


def text_files() -> list[Path]:
    found = []
    for path in REPO.rglob("*"):
        if any(part in SKIP_DIRS or part.startswith(".venv") for part in path.relative_to(REPO).parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in {"Makefile", "Dockerfile"}):
            found.append(path)
    return found


def unreachable_project_urls(text: str) -> list[str]:
    return [url for url in URL.findall(text) if any(name in url.lower() for name in PROJECT_NAMES)]


def test_the_check_finds_what_it_looks_for() -> None:
    org = "autoenhance-" + "airflow"
    sample = f"see https://github.com/{org}/x and https://pypi.org/project/airflow-provider-{'autoenhance'}/"
    assert len(unreachable_project_urls(sample)) == 2
    assert unreachable_project_urls("https://airflow.apache.org/ https://api.autoenhance.ai") == []


def test_no_url_names_a_project_home_that_does_not_exist() -> None:
    files = text_files()
    assert len(files) > 100
    offenders = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for url in unreachable_project_urls(text):
            line = text[: text.index(url)].count("\n") + 1
            offenders.append(f"{path.relative_to(REPO)}:{line}: {url}")
    assert not offenders, "URLs to a project home that does not exist:\n" + "\n".join(offenders)


def test_pyproject_declares_no_invented_project_urls() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\]\n(.*?)(?=^\[)", pyproject, re.MULTILINE | re.DOTALL)
    assert section is None or not unreachable_project_urls(section[1])


def test_mkdocs_has_no_repository_or_edit_links() -> None:
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert not re.search(r"^(repo_url|edit_uri|repo_name):", config, re.MULTILINE)


def test_lineage_facet_schema_is_the_documented_openlineage_one() -> None:
    pytest.importorskip("openlineage.client", reason="the OpenLineage client (extra `openlineage`)")
    from openlineage.client.facet_v2 import RunFacet

    from autoenhance_provider.lineage import run_facet_class

    facet = run_facet_class()(orderId="o", operation="upload", fileCount=1)
    assert facet._schemaURL == RunFacet._get_schema()
    assert facet._schemaURL.startswith("https://openlineage.io/spec/")
    assert not unreachable_project_urls(facet._schemaURL)
