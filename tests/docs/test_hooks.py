"""The MkDocs hooks of docs/hooks/: what the site shows for what a plain-Markdown reader sees."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", REPO / "docs" / "hooks" / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(markdown: str, root: Path) -> str:
    config = {"config_file_path": str(root / "mkdocs.yml")}
    return str(hook("example_include").on_page_markdown(markdown, None, config, None))


def test_a_root_file_section_is_included_with_its_links_rebased(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "limits.md").write_text("# Limits\n")
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n[intro](docs/no.md)\n<!-- --8<-- [start:versions] -->\n## [1.0.0] - 2026-01-01\n"
        "- see [Account limits](docs/limits.md#x), [README](README.md), [KaC](https://keepachangelog.com/)\n"
    )
    page = render('# Changelog\n\n--8<-- "CHANGELOG.md:versions"\n', tmp_path)
    assert "## [1.0.0] - 2026-01-01" in page
    assert "intro" not in page
    assert "[Account limits](limits.md#x)" in page
    assert "[KaC](https://keepachangelog.com/)" in page
    assert "[README](../README.md)" in page  # rebased; the site shows a root file that exists as text


def test_a_link_to_a_file_outside_docs_becomes_its_text(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "RESULTS.md").write_text("x")
    page = render("See [bench/RESULTS.md](../bench/RESULTS.md) and [gone](../no/such.md).\n", tmp_path)
    assert page == "See bench/RESULTS.md and [gone](../no/such.md).\n"


def test_sphinx_roles_become_names() -> None:
    html = "Raises :class:<code>~autoenhance_provider.exceptions.AutoenhanceError</code>."
    assert hook("api_reference").on_page_content(html, None, None, None) == (
        "Raises <code>AutoenhanceError</code>."
    )
