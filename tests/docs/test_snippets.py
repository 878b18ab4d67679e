"""Every code block in the README and in docs/ does what it says.

- Every fenced ``python`` block of README.md and docs/*.md (every page there is, found by glob,
  so new pages are checked too) is run: written to a file and parsed by Airflow's own ``DagBag``
  (which imports it and checks each DAG it defines). It must import without error; a block that
  builds a DAG must yield that DAG. A block meant as a fragment carries the marker
  ``<!-- snippet: fragment -->`` on the line just above its fence and is only compiled.
- Every ``make <target>`` named in a shell block or in inline code is a target of the Makefile.
- Every ``--flag`` given to ``autoenhance-sandbox`` or to an ``airflow`` command in a shell block is
  an option that command's ``--help`` lists; every extra in ``pip install ".[extra]"`` exists.

The blocks included from dags/ (``<!-- example: … -->``) are the example DAGs, which tests/dags runs.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FRAGMENT = "<!-- snippet: fragment -->"
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
SHELL_LANGS = {"bash", "sh", "shell", "console"}


class Block(NamedTuple):
    page: Path
    line: int
    lang: str
    body: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(langs: set[str]) -> list[Block]:
    found = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match["lang"] not in langs:
                continue
            line = text[: match.start()].count("\n") + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            body = "\n".join(row[len(match["indent"]) :] for row in match["body"].splitlines())
            found.append(Block(page, line, match["lang"], body, before == FRAGMENT))
    return found


PYTHON = blocks({"python", "py"})
SHELL = blocks(SHELL_LANGS)


def test_the_blocks_are_found() -> None:
    assert len(PYTHON) >= 8
    assert len(SHELL) >= 15
    assert any(block.page.name == "README.md" for block in PYTHON)


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: block.id)
def test_python_block_runs_and_its_dags_parse(block: Block, tmp_path: Path) -> None:
    code = compile(block.body, block.id, "exec")  # a fragment at least compiles
    if block.fragment:
        return
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path / f"snippet_{block.page.stem}_{block.line}.py"
    path.write_text(block.body, encoding="utf-8")
    bag = DagBag(dag_folder=str(path), safe_mode=False, collect_dags=False)
    bag.process_file(str(path), safe_mode=False)
    assert not bag.import_errors, (
        f"{block.id}: {next(iter(bag.import_errors.values()))}\nMake the block run as written (its "
        f"imports, names defined, tasks inside `with DAG(...)`), or, if it is only a piece of "
        f"something larger, put the line {FRAGMENT} directly above its fence (docs/development.md)."
    )
    if re.search(r"\bwith DAG\(|@dag\b", block.body):
        assert bag.dags, f"{block.id} defines a DAG, but the DagBag found none"
        for dag in bag.dags.values():
            assert dag.task_dict, f"{block.id}: DAG {dag.dag_id} has no tasks"
    assert code


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z][\w-]*):(?!=)", text, re.MULTILINE))


def test_every_make_target_named_in_the_docs_exists() -> None:
    targets = makefile_targets()
    assert {"test", "check", "docs", "dist", "lint", "demo"} <= targets
    named = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        named += [(page.name, t) for t in re.findall(r"`make ([a-z][\w-]*)`", text)]
    for block in SHELL:
        found = re.findall(r"(?:^|[;&|(]\s*|\s)make ([a-z][\w-]*)", block.body, re.MULTILINE)
        named += [(block.id, target) for target in found]
    assert len(named) >= 20
    missing = sorted({f"{where}: make {target}" for where, target in named if target not in targets})
    assert not missing, missing


def commands(body: str) -> list[str]:
    """The shell block's commands: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        out += [part.strip() for part in re.split(r"&&|;|\|", line) if part.strip()]
    return out


@functools.cache
def help_text(*command: str) -> str:
    result = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert result.returncode == 0, f"{' '.join(command)} --help: {result.stderr[-2000:]}"
    return result.stdout


def flags(command: str) -> list[str]:
    # options, not the placeholders inside an optional [..] group's text
    return re.findall(r"(?<![\w-])(--[a-z][\w-]*)", command)


def airflow_subcommand(command: str) -> tuple[str, ...]:
    words = [w for w in command.split() if not w.startswith("-")]
    sub = []
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word) or len(sub) == 2:
            break
        sub.append(word)
    return tuple(sub)


def test_every_cli_flag_in_a_shell_block_is_one_the_command_knows() -> None:
    checked = 0
    problems = []
    for block in SHELL:
        for command in commands(block.body):
            first = command.split()[0]
            if first == "autoenhance-sandbox":
                known = help_text(sys.executable, "-m", "autoenhance_sandbox")
            elif first == "airflow":
                known = help_text(str(VENV_BIN / "airflow"), *airflow_subcommand(command))
            else:
                continue
            for flag in flags(command):
                checked += 1
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", known):
                    problems.append(f"{block.id}: {command.split()[0]} does not know {flag}")
    assert checked >= 10
    assert not problems, problems


def test_every_pip_extra_in_the_docs_exists() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[project.optional-dependencies]\n", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([a-z][\w-]*) = \[", section, re.MULTILINE))
    assert {"sandbox", "test", "docs", "release", "openlineage"} <= extras
    named = []
    for page in pages():
        # ".[extra]" (a checkout), airflow-provider-autoenhance[extra], "$(ls dist/*.whl)[extra]"
        pattern = r"(?:\.|-autoenhance|\))\[([a-z][\w,-]*)\]"
        named += re.findall(pattern, page.read_text(encoding="utf-8"))
    named = [extra for group in named for extra in group.split(",")]
    named = [extra for extra in named if extra not in {"s3fs"}]  # apache-airflow-providers-amazon's extra
    assert len(named) >= 5
    assert set(named) <= extras, set(named) - extras


def test_a_block_that_does_not_run_fails_the_check(tmp_path: Path) -> None:
    """The check is not vacuous: undefined names and syntax errors are caught."""
    from airflow.dag_processing.dagbag import DagBag

    for broken in ["x = create_order.output\n", "DAG(dag_id='a', schedule=None, ...)\n"]:
        path = tmp_path / "broken.py"
        path.write_text(broken, encoding="utf-8")
        bag = DagBag(dag_folder=str(path), safe_mode=False, collect_dags=False)
        bag.process_file(str(path), safe_mode=False)
        assert bag.import_errors, broken


INCLUDE = re.compile(r"^<!-- example: (?P<path>\S+) (?P<name>\w+) -->$")


def test_every_include_from_dags_is_linked_beside_it() -> None:
    """Read as plain Markdown (a code host, an editor), the include line is invisible: the line
    above it links the file, relatively (an include right after another of the same file shares
    that link)."""
    includes = 0
    problems = []
    for page in sorted((REPO / "docs").glob("*.md")):
        lines = [line for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
        for i, line in enumerate(lines):
            match = INCLUDE.match(line)
            if not match:
                continue
            includes += 1
            above = i - 1
            while above >= 0 and lines[above].startswith(f"<!-- example: {match['path']} "):
                above -= 1
            if above < 0 or f"](../{match['path']})" not in lines[above]:
                problems.append(f"{page.name}: no link to ../{match['path']} above its include")
    assert includes >= 6
    assert not problems, problems


def test_every_flag_on_the_sandbox_page_is_one_the_sandbox_knows() -> None:
    known = help_text(sys.executable, "-m", "autoenhance_sandbox")
    named = set(re.findall(r"`(--[a-z][\w-]*)", (REPO / "docs" / "sandbox.md").read_text(encoding="utf-8")))
    assert len(named) >= 10
    unknown = sorted(flag for flag in named if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", known))
    assert not unknown, f"docs/sandbox.md names options autoenhance-sandbox --help does not list: {unknown}"
