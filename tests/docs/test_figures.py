"""Every benchmark figure in the prose of the docs is one that bench/RESULTS.md measured.

`make bench` rewrites bench/RESULTS.md; docs/benchmarks.md includes it. A figure copied into prose
(the README, the CHANGELOG, any page of docs/) goes stale when the benchmarks run again, so:

- every number in the prose of docs/benchmarks.md (outside the included file) appears in
  RESULTS.md;
- everywhere else, every figure with a benchmark unit (CPU-ms, CPU-s, MB/s, req/s, "% of a core",
  a ratio such as ``x0.33`` or 1.07 with a multiplication sign, MiB of resident memory / RSS)
  appears in RESULTS.md.

Code (fenced blocks, inline code) is not prose: a log line shown as an example is not a claim.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "RESULTS.md"
NUMBER = r"\d[\d,]*(?:\.\d+)?"
TIMES = "\N{MULTIPLICATION SIGN}"
BENCH_FIGURE = re.compile(
    rf"(?:(?P<a>{NUMBER})\s*(?:CPU-ms|CPU-s|MB/s|req/s|% of a core|{TIMES}))|(?:\bx(?P<b>{NUMBER})\b)"
)
MEMORY_FIGURE = re.compile(rf"(?P<a>{NUMBER})\s*MiB")


def normal(number: str) -> str:
    return number.replace(",", "")


def measured() -> set[str]:
    return {normal(n) for n in re.findall(NUMBER, RESULTS.read_text(encoding="utf-8"))}


def prose(text: str) -> str:
    """The text without fenced blocks, inline code, include lines and link targets."""
    text = re.sub(r"^[ ]*```.*?^[ ]*```", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"^--8<--.*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.;:])\s+(?=[A-Z(])|\n\s*\n|\n(?=[-|*] )", text)


def pages() -> list[Path]:
    return [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]


def unmeasured_figures(text: str, known: set[str]) -> list[str]:
    missing = []
    for sentence in sentences(prose(text)):
        for match in BENCH_FIGURE.finditer(sentence):
            number = normal(match["a"] or match["b"])
            if number not in known:
                missing.append(match[0])
        if re.search(r"resident memory|\bRSS\b", sentence):
            missing += [m[0] for m in MEMORY_FIGURE.finditer(sentence) if normal(m["a"]) not in known]
    return missing


def test_results_have_figures() -> None:
    assert len(measured()) > 100


def test_the_check_catches_a_stale_figure() -> None:
    known = {"0.60", "1.81"}
    assert unmeasured_figures("0.60 vs 1.81 CPU-ms per poll.", known) == []
    assert unmeasured_figures("0.6 instead of 1.8 CPU-ms per poll.", known) == ["1.8 CPU-ms"]
    assert unmeasured_figures("It raised the resident memory by 37 MiB.", known) == ["37 MiB"]
    assert unmeasured_figures("A log line: `12.1 MB/s`.", known) == []


def test_every_benchmark_figure_in_prose_is_measured() -> None:
    known = measured()
    problems = []
    for page in pages():
        for figure in unmeasured_figures(page.read_text(encoding="utf-8"), known):
            problems.append(f"{page.relative_to(REPO)}: {figure!r} is not in bench/RESULTS.md")
    assert not problems, "\n".join(problems)


def test_every_number_in_the_benchmarks_page_prose_is_measured() -> None:
    known = measured()
    text = prose((REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    text = text.replace("127.0.0.1", "")  # an address, not a figure
    numbers = [normal(n) for n in re.findall(rf"(?<![\w.]){NUMBER}", text)]
    assert numbers
    assert not [n for n in numbers if n not in known], [n for n in numbers if n not in known]
