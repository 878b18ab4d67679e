#!/usr/bin/env bash
# Entrypoint of the image built by the repository's Dockerfile (see docs/deployment.md).
#
# Decides where the `autoenhance_default` connection points, then hands over to Airflow's own
# entrypoint (/entrypoint), unchanged:
#   - AIRFLOW_CONN_AUTOENHANCE_DEFAULT already set and not empty: left alone (you chose);
#   - AUTOENHANCE_API_KEY set: the real API (https://api.autoenhance.ai), with `dev_mode` from
#     AUTOENHANCE_DEV_MODE (default true: full-size downloads spend no credits);
#   - otherwise: the sandbox service at AUTOENHANCE_SANDBOX_URL with AUTOENHANCE_SANDBOX_API_KEY
#     (plain http:// on the compose network, hence the extra allow_insecure_http).
# The connection is written in Airflow's JSON form by Python's json module, so any character in the
# key is safe. AUTOENHANCE_API_KEY is removed from the environment afterwards: tasks only see the
# key through the connection, whose password Airflow masks in logs.
set -euo pipefail

if [[ -z "${AIRFLOW_CONN_AUTOENHANCE_DEFAULT:-}" ]]; then
    AIRFLOW_CONN_AUTOENHANCE_DEFAULT="$(
        "${AUTOENHANCE_PYTHON:-python}" -c '
import json, os
key = os.environ.get("AUTOENHANCE_API_KEY", "")
if key:
    dev_mode = os.environ.get("AUTOENHANCE_DEV_MODE", "true").strip().lower() not in ("0", "false", "no", "off")
    conn = {"conn_type": "autoenhance", "host": "https://api.autoenhance.ai", "password": key,
            "extra": {"dev_mode": dev_mode}}
else:
    # Plain http:// to a host that is not loopback (the sandbox service): allowed explicitly.
    conn = {"conn_type": "autoenhance",
            "host": os.environ.get("AUTOENHANCE_SANDBOX_URL", "http://autoenhance-sandbox:8765"),
            "password": os.environ.get("AUTOENHANCE_SANDBOX_API_KEY", "sandbox-key"),
            "extra": {"allow_insecure_http": True}}
print(json.dumps(conn))
'
    )"
    export AIRFLOW_CONN_AUTOENHANCE_DEFAULT
fi
unset AUTOENHANCE_API_KEY

exec "${AUTOENHANCE_NEXT_ENTRYPOINT:-/entrypoint}" "$@"
