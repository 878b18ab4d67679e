"""The Airflow plugin that makes the API server serve the receiver at ``/autoenhance/webhook``.

Registered through the ``airflow.plugins`` entry point, so installing the provider is enough
(Airflow reads plugins listed in provider info only with ``[core] lazy_discover_providers =
False``). Every Airflow process imports plugins, and this module only builds a small FastAPI app
(FastAPI is part of Airflow 3). Only the API server mounts it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from autoenhance_provider.webhooks.app import create_app

#: Where the API server mounts the app: ``POST <airflow>/autoenhance/webhook[/<name>]``.
URL_PREFIX = "/autoenhance"


class AutoenhanceWebhooksPlugin(AirflowPlugin):
    """Serves ``POST /autoenhance/webhook`` and ``POST /autoenhance/webhook/<name>``."""

    name = "autoenhance_webhooks"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Autoenhance webhooks"}]
