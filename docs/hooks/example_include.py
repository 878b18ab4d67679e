"""MkDocs hook: include code from the example DAGs between ``# [START name]`` / ``# [END name]``.

The official Airflow providers include their how-to snippets from the example DAGs with Sphinx's
``exampleinclude`` directive, so the documented code is the code the DAG tests run. This is the
same for MkDocs: a line

    <!-- example: dags/example_autoenhance_pipeline.py howto_operator_upload_images -->

becomes a fenced Python block with the dedented lines between the two markers. A missing file or
marker stops the build (``PluginError``), so the docs never show code that no longer exists.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

DIRECTIVE = re.compile(r"^<!-- example: (?P<path>\S+) (?P<name>[A-Za-z0-9_]+) -->$", re.MULTILINE)


def extract(path: Path, name: str) -> str:
    """The dedented lines strictly between ``# [START name]`` and ``# [END name]`` of ``path``."""
    if not path.is_file():
        raise PluginError(f"example include: {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == f"# [START {name}]"]
    ends = [i for i, line in enumerate(lines) if line.strip() == f"# [END {name}]"]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0] + 1:
        raise PluginError(
            f"example include: {path} needs exactly one '# [START {name}]' ... '# [END {name}]'"
        )
    return textwrap.dedent("\n".join(lines[starts[0] + 1 : ends[0]])).strip("\n")


#: A relative link from a page in docs/ to a file of the repository outside docs/, such as
#: ``[dags/example_autoenhance_pipeline.py](../dags/example_autoenhance_pipeline.py)`` beside an
#: include: it works where the page is read as plain Markdown (a code host, an editor).
OUTSIDE_LINK = re.compile(r"\[(?P<text>[^\]\n]+)\]\(\.\./(?P<path>[^)#\s]+)\)")
#: ``--8<-- "CHANGELOG.md:versions"``: a named section of a Markdown file at the repository root,
#: included here (not by pymdownx.snippets) so that its relative links can be rebased: a link
#: written for the root (``docs/limits.md``) must work from docs/ (``limits.md``) too.
ROOT_SECTION = re.compile(r'^--8<-- "(?P<file>[\w.-]+\.md):(?P<section>[A-Za-z_]\w*)"$', re.MULTILINE)
RELATIVE_LINK = re.compile(r"\]\((?!https?:|mailto:|#|/)(?P<target>[^)\s]+)\)")


def root_section(root: Path, name: str, section: str) -> str:
    """The lines after ``--8<-- [start:section]`` (up to ``[end:section]``) of ``root/name``,
    with relative links rebased from the repository root to docs/."""
    path = root / name
    if not path.is_file():
        raise PluginError(f"include: {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if f"--8<-- [start:{section}]" in line]
    if len(starts) != 1:
        raise PluginError(f"include: {path} needs exactly one '--8<-- [start:{section}]'")
    ends = [i for i, line in enumerate(lines) if f"--8<-- [end:{section}]" in line and i > starts[0]]
    text = "\n".join(lines[starts[0] + 1 : ends[0] if ends else len(lines)])

    def rebase(match: re.Match[str]) -> str:
        target = match["target"]
        return f"]({target.removeprefix('docs/')})" if target.startswith("docs/") else f"](../{target})"

    return RELATIVE_LINK.sub(rebase, text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every example directive of the page with the code it names.

    Links to files outside docs/ that exist become their text: the site shows the included code
    (or file) itself, and has no page for the file to link to. A link to a file that does not
    exist is left alone, so the strict build reports it.
    """
    root = Path(config["config_file_path"]).parent

    def replace(match: re.Match[str]) -> str:
        code = extract(root / match["path"], match["name"])
        return f'```python title="{match["path"]}"\n{code}\n```'

    def unlink(match: re.Match[str]) -> str:
        target = root / match["path"]
        if not target.is_file() or root / "docs" in target.resolve().parents:
            return match[0]
        return match["text"]

    markdown = ROOT_SECTION.sub(lambda m: root_section(root, m["file"], m["section"]), markdown)
    return OUTSIDE_LINK.sub(unlink, DIRECTIVE.sub(replace, markdown))
