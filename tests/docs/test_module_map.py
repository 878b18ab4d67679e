"""The package map in docs/development.md matches the code: every module is on it, nothing else is.

The map's first column names modules as paths inside ``plugins/autoenhance_provider``: a file
(``uploads.py``), a package (``files/``), a file of a package (``http/policy.py``), or a row of
siblings (``operators/order.py``, ``upload.py``, …: the later names are in the first one's folder).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "plugins" / "autoenhance_provider"
ROW = re.compile(r"^\| ((?:`[^`]+`(?:, )?)+) \|", re.MULTILINE)


def mapped() -> set[str]:
    """Every path the map's first columns name, relative to the package."""
    text = (REPO / "docs" / "development.md").read_text()
    names: set[str] = set()
    for row in ROW.finditer(text):
        cells = re.findall(r"`([^`]+)`", row.group(1))
        folder = cells[0].rpartition("/")[0]
        for index, cell in enumerate(cells):
            names.add(f"{folder}/{cell}" if index and "/" not in cell and folder else cell)
    return {name for name in names if name.endswith((".py", "/"))}  # the map's rows, not other tables


def modules() -> set[str]:
    """The package's modules, as the map names them: packages whose files the map does not list
    one by one count as the package (``files/``)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        found.add(relative)
    return found


def test_every_module_is_on_the_map_and_every_entry_exists() -> None:
    names = mapped()
    missing = set()
    for module in modules():
        folder, _, name = module.rpartition("/")
        on_map = module in names or (folder and f"{folder}/" in names)
        if name == "__init__.py" and (
            f"{folder}/" in names or any(n.startswith(f"{folder}/") for n in names)
        ):
            on_map = True
        if not on_map:
            missing.add(module)
    assert not missing, f"modules not on the map in docs/development.md: {sorted(missing)}"
    stale = {name for name in names if not (PACKAGE / name).exists()}
    assert not stale, f"the map in docs/development.md names what does not exist: {sorted(stale)}"
