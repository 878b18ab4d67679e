"""What Airflow saves for an ``autoenhance`` connection outside the provider's own code."""

from __future__ import annotations

#: What the Airflow 3 connection form saves when only the key and host are filled in.
FORM_SAVED_EXTRAS = {
    "api_version": None,
    "dev_mode": False,
    "timeout": None,
    "connect_timeout": "",
    "allow_insecure_http": False,
    "ca_bundle": None,
    "app_url": "",
}
