"""docker-compose.yaml, Dockerfile and the image's entrypoint, without a Docker engine.

- the compose file is valid against the Compose specification's JSON schema (check-jsonschema);
- its services (with their profiles), named volumes, mounts and variables are exactly what
  docs/deployment.md says; the connection form's Test button is enabled;
- the wheel builds from exactly the files the Dockerfile copies;
- scripts/docker-entrypoint.sh writes the right `autoenhance_default` connection.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT = REPO / "scripts" / "docker-entrypoint.sh"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
VENV_BIN = Path(sys.executable).parent
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
PROFILED_SERVICES = {"airflow-cli": ["debug"], "flower": ["flower"]}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def doc_table(header: str) -> list[list[str]]:
    """Rows of the table with this header row in docs/deployment.md."""
    lines = DEPLOYMENT_DOC.read_text().splitlines()
    start = lines.index(header) + 2  # skip the |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_does_reject_a_broken_file(tmp_path: Path, compose: dict[str, Any]) -> None:
    """The validator really validates: the same file with a misspelt key fails."""
    broken = dict(compose)
    broken["services"] = {**compose["services"], "redis": {**compose["services"]["redis"], "helthcheck": {}}}
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "helthcheck" in result.stdout + result.stderr


def test_services_and_profiles_are_those_in_the_docs(compose: dict[str, Any]) -> None:
    documented = {code(row[0])[0]: code(row[1]) for row in doc_table("| service | profile | runs |")}
    assert set(compose["services"]) == set(documented)
    assert set(documented) == {
        "postgres", "redis", "autoenhance-sandbox", "airflow-init", *AIRFLOW_SERVICES, *PROFILED_SERVICES
    }  # fmt: skip
    for name, service in compose["services"].items():
        assert service.get("profiles", []) == documented[name], name


def test_cli_and_flower_sit_behind_profiles_as_in_the_official_file(compose: dict[str, Any]) -> None:
    """`docker compose up` starts neither; `--profile flower` / `run airflow-cli` do."""
    services = compose["services"]
    assert {name: services[name]["profiles"] for name in PROFILED_SERVICES} == PROFILED_SERVICES
    cli = services["airflow-cli"]
    assert cli["command"] == ["bash", "-c", "airflow"]
    assert cli["environment"]["CONNECTION_CHECK_MAX_COUNT"] == "0"
    assert cli["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"  # the common environment
    flower = services["flower"]
    assert flower["command"] == "celery flower"
    assert flower["ports"] == ["5555:5555"]
    assert "http://localhost:5555/" in flower["healthcheck"]["test"]
    assert flower["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    for name in PROFILED_SERVICES:
        for dependency in ("postgres", "redis", "autoenhance-sandbox"):
            assert services[name]["depends_on"][dependency] == {"condition": "service_healthy"}, name


def test_the_test_connection_button_is_enabled_everywhere(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name.startswith("airflow-") or name == "flower":
            assert service["environment"]["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled", name


def test_sandbox_data_lives_on_the_documented_named_volume(compose: dict[str, Any]) -> None:
    sandbox = compose["services"]["autoenhance-sandbox"]
    options = dict(zip(sandbox["command"][::2], sandbox["command"][1::2], strict=True))
    data_dir = options["--data-dir"]
    assert sandbox["volumes"] == [f"sandbox-data:{data_dir}"]
    assert set(compose["volumes"]) == {"postgres-db-volume", "sandbox-data"}
    documented = {code(row[0])[0]: code(row[1])[0] for row in doc_table("| volume | mounted at | holds |")}
    assert documented == {"postgres-db-volume": "/var/lib/postgresql/data", "sandbox-data": data_dir}
    assert compose["services"]["postgres"]["volumes"] == ["postgres-db-volume:/var/lib/postgresql/data"]
    # Docker fills a new named volume from the image, owner included: the image must create the
    # folder as its `airflow` user, or the sandbox (running as `airflow`) could not write there.
    lines = DOCKERFILE.read_text().splitlines()
    assert f"RUN mkdir -p {data_dir}" in lines
    assert not any(line.startswith("USER") for line in lines), "the RUN must stay as the image's user"


def test_airflow_services_run_the_celery_components(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"] == command
        assert service["build"] == "."
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg"
        assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        for dependency in ("postgres", "redis", "autoenhance-sandbox"):
            assert service["depends_on"][dependency] == {"condition": "service_healthy"}
        assert "healthcheck" in service
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    init = services["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "airflow config list" in init["command"][1]


def test_sandbox_service_is_reachable_from_the_workers(compose: dict[str, Any]) -> None:
    sandbox = compose["services"]["autoenhance-sandbox"]
    assert sandbox["entrypoint"] == ["autoenhance-sandbox"]
    command = sandbox["command"]
    options = dict(zip(command[::2], command[1::2], strict=True))
    assert options["--host"] == "0.0.0.0"  # noqa: S104 - inside its container
    assert options["--port"] == "8765"
    # Assets on a second name of the same container: resolvable from every worker container.
    assert options["--asset-base-url"] == "http://autoenhance-assets:8765"
    assert sandbox["networks"]["default"]["aliases"] == ["autoenhance-assets"]
    assert "/_sandbox/health" in " ".join(sandbox["healthcheck"]["test"])
    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AUTOENHANCE_SANDBOX_URL"] == "http://autoenhance-sandbox:8765"
    assert env["AUTOENHANCE_SANDBOX_API_KEY"] == sandbox["environment"]["AUTOENHANCE_SANDBOX_API_KEY"]


def test_mounts_are_those_in_the_docs(compose: dict[str, Any]) -> None:
    expected = []
    for row in doc_table("| host | container |"):
        host, container = code(row[0])[0], code(row[1])[0]
        expected.append(f"${{AIRFLOW_PROJ_DIR:-.}}/{host.removeprefix('./')}:{container}")
    for name in [*AIRFLOW_SERVICES, *PROFILED_SERVICES, "airflow-init"]:
        assert compose["services"][name]["volumes"] == expected, name
    assert any(v.endswith(":/opt/airflow/dags") for v in expected)
    assert any(v.endswith(":/opt/airflow/plugins") for v in expected)


def test_variables_are_those_in_the_docs() -> None:
    used: dict[str, set[str]] = {}
    for match in INTERPOLATION.finditer(COMPOSE.read_text().replace("$$", "")):
        used.setdefault(match["name"], set()).add(match["default"] or "")
    documented = {
        code(row[0])[0]: (code(row[1]) or [""])[0] for row in doc_table("| variable | default | effect |")
    }
    assert set(used) == set(documented)
    for name, defaults in used.items():
        assert defaults == {documented[name]}, (name, defaults, documented[name])


def test_dockerfile_extends_the_matching_airflow_image() -> None:
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "FROM apache/airflow:3.3.2-python3.11"
    install = next(line for line in lines if line.startswith("RUN pip install"))
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert '"/opt/autoenhance[sandbox]"' in install
    assert lines[-2] == 'ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/autoenhance/docker-entrypoint.sh"]'
    assert os.access(ENTRYPOINT, os.X_OK), "COPY keeps the mode: the script must be executable"


def test_wheel_builds_from_exactly_what_the_dockerfile_copies(tmp_path: Path) -> None:
    context = tmp_path / "opt-autoenhance"
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, target = [part for part in line.split()[1:] if not part.startswith("--")]
        if not target.startswith("/opt/autoenhance/"):
            continue
        relative = target.removeprefix("/opt/autoenhance/")
        for source in sources:
            origin = REPO / source
            if origin.is_dir():
                shutil.copytree(origin, context / relative, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination = context / relative
                if target.endswith("/"):
                    destination = destination / origin.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, destination)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
         "-w", str(tmp_path / "dist"), f"{context}[sandbox]"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = next((tmp_path / "dist").glob("airflow_provider_autoenhance-*.whl"))
    listing = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True, check=True
    ).stdout
    assert "autoenhance_provider/get_provider_info.py" in listing
    assert "autoenhance_sandbox/cli.py" in listing


def run_entrypoint(tmp_path: Path, **env: str) -> dict[str, str]:
    """Run the entrypoint with a stand-in for Airflow's /entrypoint that dumps its environment."""
    dump = tmp_path / "env.json"
    fake = tmp_path / "fake-entrypoint"
    fake.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c "import json, os; print(json.dumps(dict(os.environ)))"\n'
    )
    fake.chmod(0o755)
    base = {"PATH": os.environ["PATH"], "AUTOENHANCE_PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ENTRYPOINT), "airflow", "version"],
        env={**base, "AUTOENHANCE_NEXT_ENTRYPOINT": str(fake), **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    dump.write_text(result.stdout)
    return json.loads(result.stdout)


def resolved(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """What the provider's hook makes of the connection the entrypoint wrote."""
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"])
    return AutoenhanceHook().config


def test_entrypoint_points_at_the_sandbox_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = run_entrypoint(
        tmp_path,
        AUTOENHANCE_API_KEY="",
        AUTOENHANCE_SANDBOX_URL="http://autoenhance-sandbox:8765",
        AUTOENHANCE_SANDBOX_API_KEY="sandbox-key",
    )
    conn = json.loads(env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"])
    assert conn == {
        "conn_type": "autoenhance",
        "host": "http://autoenhance-sandbox:8765",
        "password": "sandbox-key",
        "extra": {"allow_insecure_http": True},
    }
    config = resolved(env, monkeypatch)
    assert config.base_url == "http://autoenhance-sandbox:8765"
    assert config.dev_mode is False
    assert "AUTOENHANCE_API_KEY" not in env


def test_entrypoint_points_at_the_real_api_when_a_key_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # shell- and JSON-hostile, yet a key that can travel in an HTTP header (printable ASCII, no spaces)
    key = "k3y\"quotes\",$dollars,\\backslash'single'`tick`"
    env = run_entrypoint(tmp_path, AUTOENHANCE_API_KEY=key, AUTOENHANCE_DEV_MODE="true")
    conn = json.loads(env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"])
    assert conn["password"] == key
    assert conn["extra"] == {"dev_mode": True}
    config = resolved(env, monkeypatch)
    assert config.base_url == "https://api.autoenhance.ai"
    assert config.dev_mode is True
    assert "AUTOENHANCE_API_KEY" not in env  # tasks only see the key through the connection
    env = run_entrypoint(tmp_path, AUTOENHANCE_API_KEY="k", AUTOENHANCE_DEV_MODE="false")
    assert json.loads(env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"])["extra"] == {"dev_mode": False}


def test_entrypoint_keeps_a_connection_of_your_own(tmp_path: Path) -> None:
    own = "autoenhance://:mine@api.autoenhance.ai?timeout=30"
    env = run_entrypoint(tmp_path, AUTOENHANCE_API_KEY="ignored", AIRFLOW_CONN_AUTOENHANCE_DEFAULT=own)
    assert env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"] == own
