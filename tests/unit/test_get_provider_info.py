"""Provider metadata: schema, import-lightness, and agreement with the hook and the UI methods."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import airflow
import jsonschema
import pytest
from packaging.version import Version

from autoenhance_provider import __version__
from autoenhance_provider.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR, get_provider_info

AIRFLOW_PKG = Path(airflow.__file__).parent
DIST_NAME = "airflow-provider-autoenhance"


@pytest.fixture(scope="module")
def info() -> dict:
    return get_provider_info()


@pytest.fixture(scope="module")
def conn_type_entry(info) -> dict:
    (entry,) = info["connection-types"]
    return entry


def _import_path(dotted: str):
    """Import ``pkg.module`` or ``pkg.module.Class``."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        module, _, attr = dotted.rpartition(".")
        if exc.name != dotted or not module:
            raise
        return getattr(importlib.import_module(module), attr)


def _listed_modules(info: dict) -> list[str]:
    return [
        module
        for key in ("hooks", "operators", "sensors", "triggers")
        for group in info.get(key, [])
        for module in group["python-modules"]
    ]


def _json_output(stdout: str):
    """The JSON document of ``airflow ... --output json``.

    Airflow 3.0 logs to stdout too (lines like ``[2026-01-01T00:00:00.000+0000] {x.py:1} INFO - ...``),
    so the document is the one line of stdout that parses as JSON; 3.3 prints only the document.
    """
    documents = []
    for line in stdout.splitlines():
        try:
            documents.append(json.loads(line))
        except ValueError:
            continue
    assert len(documents) == 1, stdout[-2000:]
    return documents[0]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env["AIRFLOW_HOME"] = str(tmp_path)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path / 'airflow.db'}"
    return env


# ------------------------------------------------------------------------------ the dict itself
def test_validates_against_airflows_runtime_schema(info):
    schema_path = AIRFLOW_PKG / "provider_info.schema.json"
    assert schema_path.is_file(), "Airflow's runtime provider-info schema not found"
    schema = json.loads(schema_path.read_text())

    jsonschema.validate(info, schema)


def test_connection_type_entry_validates_against_the_declarative_form_schema(conn_type_entry):
    # provider_info.schema.json does not describe ui-field-behaviour / conn-fields; the
    # provider.yaml schema (what Airflow 3.2+ reads them by) does.
    schema = json.loads((AIRFLOW_PKG / "provider.yaml.schema.json").read_text())
    item_schema = schema["properties"]["connection-types"]["items"]

    jsonschema.validate(conn_type_entry, item_schema)


def test_invalid_info_would_be_caught_by_the_schema(info):
    # Guards the test above against a schema that accepts anything.
    schema = json.loads((AIRFLOW_PKG / "provider_info.schema.json").read_text())
    broken = {**info, "connection-types": [{"hook-class-name": 42}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_package_name_and_version(info):
    assert info["package-name"] == DIST_NAME
    assert info["name"] == "Autoenhance"
    assert info["description"]
    assert info["versions"] == [__version__] == [version(DIST_NAME)]
    assert "hook-class-names" not in info  # deprecated, forces eager hook imports


def test_module_is_import_light():
    code = (
        "import json, sys\n"
        "from autoenhance_provider.get_provider_info import get_provider_info\n"
        "get_provider_info()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = set(json.loads(out.stdout))

    assert "autoenhance_provider.get_provider_info" in loaded  # the probe really ran
    heavy = {"requests", "httpx", "urllib3", "airflow", "autoenhance_provider.hooks.autoenhance"}
    assert not (heavy & loaded), f"get_provider_info imports {sorted(heavy & loaded)}"
    assert not [m for m in loaded if m.startswith("autoenhance_provider.hooks")]


# ------------------------------------------------------------------------------ agreement with the code
def test_hook_attributes_match_the_connection_type(conn_type_entry):
    hook_cls = _import_path(conn_type_entry["hook-class-name"])
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    assert hook_cls is AutoenhanceHook
    assert hook_cls.conn_type == conn_type_entry["connection-type"] == "autoenhance"
    assert hook_cls.hook_name == conn_type_entry["hook-name"]
    assert hook_cls.conn_name_attr == "autoenhance_conn_id"
    assert hook_cls.default_conn_name == "autoenhance_default"
    assert "test_connection" in vars(hook_cls)
    # ProvidersManager only looks at the class's own __dict__ for the UI methods.
    assert "get_ui_field_behaviour" in vars(hook_cls)
    assert "get_connection_form_widgets" in vars(hook_cls)


EXISTING_MODULES = [
    "autoenhance_provider.hooks.autoenhance",
    "autoenhance_provider.links.autoenhance",
    "autoenhance_provider.operators.order",
]


@pytest.mark.parametrize("module", EXISTING_MODULES)
def test_existing_listed_modules_import(info, module):
    assert module in _listed_modules(info) + [link.rpartition(".")[0] for link in info["extra-links"]]
    assert importlib.import_module(module)


def test_listed_classes_import(info, conn_type_entry):
    from airflow.sdk import BaseOperatorLink

    try:  # Airflow >= 3.1
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 3.0
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]

    assert issubclass(_import_path(conn_type_entry["hook-class-name"]), BaseHook)
    for link_path in info["extra-links"]:
        link_cls = _import_path(link_path)
        assert issubclass(link_cls, BaseOperatorLink)
        assert link_cls.name


def test_operators_use_the_listed_extra_link(info):
    from autoenhance_provider.operators.order import CreateOrderOperator

    listed = {_import_path(p) for p in info["extra-links"]}
    assert {type(link) for link in CreateOrderOperator.operator_extra_links} <= listed


def test_every_listed_module_imports(info):
    """Every module the provider advertises must exist (sensors, triggers, upload, download too)."""
    missing = []
    for module in _listed_modules(info):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{module}: {exc}")
    assert not missing, "modules listed in get_provider_info() do not import:\n" + "\n".join(missing)


# ------------------------------------------------------------------------------ connection form
# What a user sees in Admin → Connections → Autoenhance, written out by hand: these tests compare
# the form Airflow's API server sends to the React UI with this, not the provider's constants with
# themselves.
HIDDEN_STANDARD_FIELDS = {"url_schema", "port", "login"}
#: standard field -> (label, start of the placeholder)
SHOWN_STANDARD_FIELDS = {
    "host": ("API base URL", "https://api.autoenhance.ai (default)"),
    "password": ("API key", "Your Autoenhance API key"),
}
#: extra field -> (label, type in the declarative form, words of its description)
EXTRA_FIELDS = {
    "api_version": ("API version", "string", "x-api-version"),
    "dev_mode": ("Development mode", "boolean", "without spending credits"),
    "timeout": ("Read timeout (seconds)", "number", "default 60"),
    "connect_timeout": ("Connect timeout (seconds)", "number", "default 10"),
    "request_deadline": ("Request deadline (seconds)", "number", "default 120"),
    "min_transfer_rate": ("Minimum transfer rate (bytes/s)", "number", "default 50000"),
    "max_requests_per_second": ("Maximum API requests per second", "number", "default 200"),
    "ca_bundle": ("CA bundle path", "string", "certificate authorities"),
    "app_url": ("Web app URL (order links)", "string", "order pages"),
    "order_id_namespace": ("Order id namespace", "string", "unique to this Airflow deployment"),
    "allow_insecure_http": ("Allow plain http:// to a non-local host", "boolean", "unencrypted"),
}
BOOLEAN_EXTRAS = {name for name, (_, kind, _) in EXTRA_FIELDS.items() if kind == "boolean"}


def assert_form_as_the_user_sees_it(entry: dict, *, legacy: bool) -> None:
    """``entry``: one item of ``GET /ui/connections/hook_meta`` (ConnectionHookMetaData as JSON)."""
    assert entry["connection_type"] == "autoenhance"
    assert entry["hook_name"] == "Autoenhance"
    standard = entry["standard_fields"]
    for name in HIDDEN_STANDARD_FIELDS:
        assert standard[name]["hidden"] is True, name
    assert standard["description"] is None or standard["description"]["hidden"] is False
    for name, (label, placeholder) in SHOWN_STANDARD_FIELDS.items():
        assert standard[name]["hidden"] is False, name
        assert standard[name]["title"] == label, name
        assert standard[name]["placeholder"].startswith(placeholder), name

    extras = entry["extra_fields"]
    assert set(extras) == set(EXTRA_FIELDS)
    for name, (label, kind, words) in EXTRA_FIELDS.items():
        schema = extras[name]["schema"]
        assert schema["title"] == label, name
        assert words in extras[name]["description"], name
        # Every field may be left empty; the legacy WTForms fields are text boxes or check boxes.
        expected = ("boolean" if name in BOOLEAN_EXTRAS else "string") if legacy else kind
        assert schema["type"] == [expected, "null"], name
        assert extras[name]["value"] in (None, False), name  # nothing pre-filled but "off"


@pytest.fixture
def api_client(airflow_db, monkeypatch):
    """Airflow's own API server app (what serves the React UI), every request as an admin."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_ISSUER", "autoenhance-tests")  # 3.0 signs no token without
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "autoenhance-tests-jwt-secret-" + "0" * 48)
    with TestClient(create_app(apps="core")) as client:
        yield client


#: Airflow 3.2+ reads conn-fields / ui-field-behaviour from the provider info; 3.0 and 3.1 call the
#: hook's legacy methods, and only when WTForms is importable (FAB installed).
DECLARATIVE_FORM = Version(airflow.__version__).release[:2] >= (3, 2)


def test_the_ui_gets_our_connection_form(api_client):
    """What the React UI's connection form reads (``GET /ui/connections/hook_meta``)."""
    from importlib.util import find_spec

    response = api_client.get("/ui/connections/hook_meta")
    assert response.status_code == 200, response.text[:2000]
    forms = {h["connection_type"]: h for h in response.json()}
    entry = forms["autoenhance"]
    assert entry["hook_class_name"] == "autoenhance_provider.hooks.autoenhance.AutoenhanceHook"
    if DECLARATIVE_FORM or find_spec("wtforms") is not None:
        assert_form_as_the_user_sees_it(entry, legacy=not DECLARATIVE_FORM)
    else:
        # Airflow 3.0/3.1 without FAB (make compat): the API server builds no form for any hook, not
        # even its own SMTP one; the legacy form itself is checked by the next test.
        assert entry["standard_fields"] is None
        assert entry["extra_fields"] is None
        assert forms["smtp"]["extra_fields"] is None


def test_the_legacy_hook_methods_render_the_same_form(monkeypatch):
    """The form an API server without FAB builds from get_connection_form_widgets and
    get_ui_field_behaviour (as Airflow 3.0 and 3.1 do): the hook's WTForms fields are built with
    Airflow's own stand-ins for WTForms and FAB and converted by Airflow's own code."""
    from importlib.util import find_spec
    from unittest import mock

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ConnectionFormWidgetInfo

    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    service = HookMetaService
    for name in (
        "wtforms",
        "wtforms.validators",
        "flask_babel",
        "flask_appbuilder",
        "flask_appbuilder.fieldwidgets",
    ):
        # FAB and WTForms are not installed with Airflow 3: module stand-ins, as the API server uses
        # (already imported ones, e.g. Airflow's own stand-in, just get their attributes replaced).
        top = sys.modules.get(name.partition(".")[0])
        if name not in sys.modules and (isinstance(top, mock.MagicMock) or find_spec(name) is None):
            monkeypatch.setitem(sys.modules, name, mock.MagicMock())
    stand_ins = {
        "wtforms.StringField": service.MockStringField,
        "wtforms.IntegerField": service.MockIntegerField,
        "wtforms.PasswordField": service.MockPasswordField,
        "wtforms.BooleanField": service.MockBooleanField,
        "wtforms.validators.Optional": service.MockOptional,
        "flask_babel.lazy_gettext": lambda text: text,
        "flask_appbuilder.fieldwidgets.BS3TextFieldWidget": service.MockAnyWidget,
        "flask_appbuilder.fieldwidgets.BS3PasswordFieldWidget": service.MockAnyWidget,
    }
    for target, stand_in in stand_ins.items():
        monkeypatch.setattr(target, stand_in, raising=False)

    widgets = AutoenhanceHook.get_connection_form_widgets()
    behaviour = AutoenhanceHook.get_ui_field_behaviour()
    assert all(isinstance(field, service.MockBaseField) for field in widgets.values())  # built as WTForms
    form_widgets = {  # as ProvidersManager registers a hook's widgets
        f"extra__autoenhance__{name}": ConnectionFormWidgetInfo(
            "AutoenhanceHook", "airflow-provider-autoenhance", field, name, False
        )
        for name, field in widgets.items()
    }
    standard = service._make_standard_fields(behaviour)
    entry = {
        "connection_type": AutoenhanceHook.conn_type,
        "hook_name": AutoenhanceHook.hook_name,
        "standard_fields": standard.model_dump() if standard else None,
        "extra_fields": service._convert_extra_fields(form_widgets)["autoenhance"],
    }
    assert_form_as_the_user_sees_it(entry, legacy=True)


def test_legacy_ui_field_behaviour_returns_copies():
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    AutoenhanceHook.get_ui_field_behaviour()["hidden_fields"].append("password")
    assert "password" not in UI_FIELD_BEHAVIOUR["hidden-fields"]


def test_conn_fields_are_extras_the_connection_understands(conn_type_entry):
    from autoenhance_provider.connection import KNOWN_EXTRAS

    assert set(conn_type_entry["conn-fields"]) <= KNOWN_EXTRAS


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("api_version", ["2025-05-08", "", None], ["latest", "2025-5-8"]),
        ("dev_mode", [True, False, None], ["yes"]),
        ("timeout", [30, 0.5, None], [0, "30"]),
        ("allow_insecure_http", [True, None], ["true"]),
    ],
)
def test_conn_field_schemas_accept_what_the_connection_accepts(set_connection, make_hook, field, good, bad):
    schema = CONN_FIELDS[field]["schema"]
    for value in good:
        jsonschema.validate(value, schema)
        if value is not None and field != "allow_insecure_http":
            set_connection(extra={field: value})
            make_hook().config  # noqa: B018 - the connection accepts it too
    for value in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)


# ------------------------------------------------------------------------------ Airflow sees it
def _airflow_json(tmp_path: Path, *command: str):
    """What ``airflow <command> --output json`` prints, run in a fresh AIRFLOW_HOME; it must succeed."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *command, "--output", "json"],
        capture_output=True,
        text=True,
        env=_clean_env(tmp_path),
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    return _json_output(result.stdout)


def test_airflow_providers_list_shows_the_provider(tmp_path):
    providers = _airflow_json(tmp_path, "providers", "list")
    ours = [p for p in providers if p["package_name"] == DIST_NAME]
    assert ours, f"{DIST_NAME} missing from: {[p['package_name'] for p in providers]}"
    assert ours[0]["version"] == __version__


def test_airflow_providers_hooks_registers_the_connection_type(tmp_path):
    hooks = _airflow_json(tmp_path, "providers", "hooks")
    (ours,) = [h for h in hooks if h["connection_type"] == "autoenhance"]
    assert ours["class"] == "autoenhance_provider.hooks.autoenhance.AutoenhanceHook"
    assert ours["conn_id_attribute_name"] == "autoenhance_conn_id"
    assert ours["package_name"] == DIST_NAME
