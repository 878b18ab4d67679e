"""Provider metadata: schema, import-lightness, and agreement with the hook and the UI methods."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
from importlib.metadata import version
from pathlib import Path

import airflow
import jsonschema
import pytest

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
def test_legacy_ui_field_behaviour_equals_the_declarative_one(conn_type_entry):
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    legacy = AutoenhanceHook.get_ui_field_behaviour()
    declarative = conn_type_entry["ui-field-behaviour"]

    assert {k.replace("_", "-"): v for k, v in legacy.items()} == declarative
    assert set(legacy) == {"hidden_fields", "relabeling", "placeholders"}
    assert "password" not in legacy["hidden_fields"]
    assert "host" not in legacy["hidden_fields"]
    assert legacy["relabeling"]["password"] == "API key"


def test_legacy_ui_field_behaviour_returns_copies():
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    AutoenhanceHook.get_ui_field_behaviour()["hidden_fields"].append("password")
    assert "password" not in UI_FIELD_BEHAVIOUR["hidden-fields"]


class _Field:
    def __init__(self, label, widget=None, description="", **kwargs) -> None:
        self.label = label
        self.widget = widget
        self.description = description


@pytest.fixture
def fake_form_modules(monkeypatch):
    """flask_appbuilder / flask_babel / wtforms are not installed with Airflow 3: fake them."""
    fieldwidgets = types.ModuleType("flask_appbuilder.fieldwidgets")
    fieldwidgets.BS3TextFieldWidget = type("BS3TextFieldWidget", (), {})
    fab = types.ModuleType("flask_appbuilder")
    fab.fieldwidgets = fieldwidgets
    babel = types.ModuleType("flask_babel")
    babel.lazy_gettext = lambda text: f"i18n:{text}"
    wtforms = types.ModuleType("wtforms")
    wtforms.StringField = type("StringField", (_Field,), {})
    wtforms.BooleanField = type("BooleanField", (_Field,), {})
    wtforms.IntegerField = type("IntegerField", (_Field,), {})
    wtforms.PasswordField = type("PasswordField", (_Field,), {})
    for name, module in {
        "flask_appbuilder": fab,
        "flask_appbuilder.fieldwidgets": fieldwidgets,
        "flask_babel": babel,
        "wtforms": wtforms,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return wtforms, fieldwidgets


def test_connection_form_widgets_agree_with_conn_fields(fake_form_modules, conn_type_entry):
    wtforms, fieldwidgets = fake_form_modules
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    widgets = AutoenhanceHook.get_connection_form_widgets()
    conn_fields = conn_type_entry["conn-fields"]

    assert set(widgets) == set(conn_fields)
    for name, field in widgets.items():
        spec = conn_fields[name]
        assert field.label == f"i18n:{spec['label']}"
        assert field.description == spec["description"]
        types_ = spec["schema"]["type"]
        types_ = types_ if isinstance(types_, list) else [types_]
        if "boolean" in types_:
            assert isinstance(field, wtforms.BooleanField), name
        else:
            assert isinstance(field, wtforms.StringField), name
            assert isinstance(field.widget, fieldwidgets.BS3TextFieldWidget)


def test_conn_fields_are_extras_the_connection_understands(conn_type_entry):
    from autoenhance_provider.connection import KNOWN_EXTRAS

    assert set(conn_type_entry["conn-fields"]) <= KNOWN_EXTRAS
    assert conn_type_entry["conn-fields"] is CONN_FIELDS or conn_type_entry["conn-fields"] == CONN_FIELDS


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
def test_airflow_providers_list_shows_the_provider(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=_clean_env(tmp_path),
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    providers = _json_output(result.stdout)
    ours = [p for p in providers if p["package_name"] == DIST_NAME]
    assert ours, f"{DIST_NAME} missing from: {[p['package_name'] for p in providers]}"
    assert ours[0]["version"] == __version__


def test_airflow_providers_hooks_registers_the_connection_type(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "providers", "hooks", "--output", "json"],
        capture_output=True,
        text=True,
        env=_clean_env(tmp_path),
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    hooks = _json_output(result.stdout)
    (ours,) = [h for h in hooks if h["connection_type"] == "autoenhance"]
    assert ours["class"] == "autoenhance_provider.hooks.autoenhance.AutoenhanceHook"
    assert ours["conn_id_attribute_name"] == "autoenhance_conn_id"
    assert ours["package_name"] == DIST_NAME
