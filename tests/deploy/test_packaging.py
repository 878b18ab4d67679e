"""The release artefacts: what `make dist` and the README's install lines rely on.

`python -m build` makes an sdist and a wheel that pass `twine check --strict`; the wheel, installed
with `--no-deps` into a throwaway venv (no Airflow there), imports
`autoenhance_provider.get_provider_info` and declares the `apache_airflow_provider` entry point
Airflow discovers providers by. Built with `--no-isolation` (hatchling from the `release` extra)
so that the test needs no package index.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ENTRY_POINT = "autoenhance_provider.get_provider_info:get_provider_info"


def version() -> str:
    text = (REPO / "plugins" / "autoenhance_provider" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    assert match
    return match[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("build", "hatchling", "twine"):
        if subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode:
            pytest.fail(f"{module} is missing: install the release extra (pip install -e '.[release]')")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def wheel(dist: Path) -> Path:
    (found,) = dist.glob("airflow_provider_autoenhance-*-py3-none-any.whl")
    return found


def test_build_makes_one_sdist_and_one_wheel_of_this_version(dist: Path) -> None:
    names = sorted(path.name for path in dist.iterdir())
    assert names == [
        f"airflow_provider_autoenhance-{version()}-py3-none-any.whl",
        f"airflow_provider_autoenhance-{version()}.tar.gz",
    ]


def test_twine_check_passes(dist: Path) -> None:
    artefacts = sorted(str(path) for path in dist.iterdir())
    result = subprocess.run(
        [str(VENV_BIN / "twine"), "check", "--strict", *artefacts],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_metadata_declares_the_provider(dist: Path) -> None:
    with zipfile.ZipFile(wheel(dist)) as archive:
        info = f"airflow_provider_autoenhance-{version()}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = HeaderParser().parsestr(archive.read(f"{info}/METADATA").decode())
        names = archive.namelist()
    sections = dict(re.findall(r"\[([^\]]+)\]\n([^\[]*)", entry_points))
    assert sections["apache_airflow_provider"].strip() == f"provider_info = {ENTRY_POINT}"
    assert sections["console_scripts"].strip() == "autoenhance-sandbox = autoenhance_sandbox.cli:main"
    assert metadata["Name"] == "airflow-provider-autoenhance"
    assert metadata["Version"] == version()
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "apache-airflow>=3.0.0" in metadata.get_all("Requires-Dist")
    # No project URLs until the project has a public home (none is invented).
    assert not metadata.get_all("Project-URL")
    # The long description is the README.
    assert "## My own DAG with my real key" in metadata.get_payload()
    assert "autoenhance_provider/py.typed" in names
    assert "autoenhance_provider/get_provider_info.py" in names
    assert "autoenhance_sandbox/cli.py" in names
    assert not [name for name in names if name.startswith(("tests/", "dags/", "bench/", "docs/"))]


def test_wheel_installs_without_deps_and_airflow_finds_the_entry_point(dist: Path, tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.create(target, with_pip=False, symlinks=True)
    python = target / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--disable-pip-version-check", "--no-index", str(wheel(dist))],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    probe = """
import importlib.metadata, importlib.util, json
import autoenhance_provider.get_provider_info as module
(ep,) = importlib.metadata.entry_points(group="apache_airflow_provider", name="provider_info")
info = ep.load()()
types = [c["connection-type"] for c in info["connection-types"]]
print(json.dumps({"file": module.__file__, "value": ep.value, "dist": ep.dist.name,
                  "package": info["package-name"], "types": types,
                  "airflow": importlib.util.find_spec("airflow") is not None}))
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    result = subprocess.run(
        [str(python), "-I", "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["file"].startswith(str(target)), "imported from the installed wheel, not the checkout"
    assert seen["value"] == ENTRY_POINT
    assert seen["dist"] == "airflow-provider-autoenhance"
    assert seen["package"] == "airflow-provider-autoenhance"
    assert "autoenhance" in seen["types"]
    assert seen["airflow"] is False, "the throwaway venv has no Airflow: the metadata imports alone"
