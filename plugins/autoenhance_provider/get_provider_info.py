"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Imported by every Airflow component, so it imports nothing but the package version.
Airflow 3.2+ renders the connection form from ``ui-field-behaviour`` and ``conn-fields`` here;
older versions call the hook's ``get_ui_field_behaviour`` / ``get_connection_form_widgets``,
which read the same two constants.
"""

from __future__ import annotations

from typing import Any

from autoenhance_provider import __version__

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"password": "API key", "host": "API base URL"},
    "placeholders": {
        "password": "Your Autoenhance API key (app.autoenhance.ai → API)",
        "host": "https://api.autoenhance.ai (default) — or http://127.0.0.1:8765 for the local sandbox",
        "extra": '{"api_version": "2025-05-08", "dev_mode": false, "timeout": 60}',
    },
}

CONN_FIELDS: dict[str, Any] = {
    "api_version": {
        "label": "API version",
        "description": (
            "Pin a dated API version (sent as x-api-version), e.g. 2025-05-08. Empty: account default."
        ),
        "schema": {"type": ["string", "null"], "pattern": r"^(\d{4}-\d{2}-\d{2})?$"},
    },
    "dev_mode": {
        "label": "Development mode",
        "description": (
            "Send x-dev-mode: true so downloads exercise the purchase flow without spending credits."
        ),
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "timeout": {
        "label": "Read timeout (seconds)",
        "description": "Seconds to wait for each response (default 60). Connect timeout: 10 s.",
        "schema": {"type": ["number", "null"], "minimum": 0.1},
    },
    "connect_timeout": {
        "label": "Connect timeout (seconds)",
        "description": "Seconds to wait for a connection to open (default 10).",
        "schema": {"type": ["number", "null"], "minimum": 0.1},
    },
    "request_deadline": {
        "label": "Request deadline (seconds)",
        "description": (
            "Most seconds one API request may take in all (connect, headers, body), however slowly "
            "the server answers (default 120)."
        ),
        "schema": {"type": ["number", "null"], "minimum": 0.1},
    },
    "min_transfer_rate": {
        "label": "Minimum transfer rate (bytes/s)",
        "description": (
            "Uploads and downloads get the request deadline plus their size at this rate "
            "(default 50000); a slower transfer is cut and retried."
        ),
        "schema": {"type": ["number", "null"], "minimum": 1},
    },
    "max_requests_per_second": {
        "label": "Maximum API requests per second",
        "description": (
            "Requests per second this process may send to the API, all tasks and waits together "
            "(default 200; the API allows 300 per IP address). 0 switches the limit off."
        ),
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "ca_bundle": {
        "label": "CA bundle path",
        "description": "PEM file of certificate authorities to trust (a private CA). Empty: the system's.",
        "schema": {"type": ["string", "null"]},
    },
    "app_url": {
        "label": "Web app URL (order links)",
        "description": (
            "Base URL of the order pages the 'Autoenhance order' link opens. Empty: app.autoenhance.ai, "
            "or the API URL itself for a local sandbox."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "order_id_namespace": {
        "label": "Order id namespace",
        "description": (
            "A name unique to this Airflow deployment (e.g. prod-eu). Order ids that CreateOrderOperator "
            "derives include it, so deployments sharing an account never share an order. Empty: the DAG "
            "run's start time keeps them apart."
        ),
        "schema": {"type": ["string", "null"], "maxLength": 200},
    },
    "allow_insecure_http": {
        "label": "Allow plain http:// to a non-local host",
        "description": "Only for test servers: the API key would travel unencrypted.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}

_MODULE = "autoenhance_provider"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-autoenhance",
        "name": "Autoenhance",
        "description": "Autoenhance.ai photo enhancement (API v3): orders, uploads, HDR, waiting, downloads.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Autoenhance",
                "external-doc-url": "https://docs.autoenhance.ai/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Autoenhance", "python-modules": [f"{_MODULE}.hooks.autoenhance"]}],
        "operators": [
            {
                "integration-name": "Autoenhance",
                "python-modules": [
                    f"{_MODULE}.operators.order",
                    f"{_MODULE}.operators.upload",
                    f"{_MODULE}.operators.download",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Autoenhance", "python-modules": [f"{_MODULE}.sensors.autoenhance"]}
        ],
        "triggers": [
            {"integration-name": "Autoenhance", "python-modules": [f"{_MODULE}.triggers.autoenhance"]}
        ],
        "connection-types": [
            {
                "connection-type": "autoenhance",
                "hook-class-name": f"{_MODULE}.hooks.autoenhance.AutoenhanceHook",
                "hook-name": "Autoenhance",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
        "extra-links": [f"{_MODULE}.links.autoenhance.AutoenhanceOrderLink"],
    }
