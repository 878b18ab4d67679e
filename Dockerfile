# Airflow 3.3.2 (Python 3.11) with this provider and the local Autoenhance sandbox installed.
# Used by docker-compose.yaml; see docs/deployment.md.
FROM apache/airflow:3.3.2-python3.11

# Only what the package build needs (see .dockerignore): the metadata and the two packages.
COPY --chown=airflow:0 pyproject.toml README.md /opt/autoenhance/
COPY --chown=airflow:0 plugins/autoenhance_provider /opt/autoenhance/plugins/autoenhance_provider
COPY --chown=airflow:0 plugins/autoenhance_sandbox /opt/autoenhance/plugins/autoenhance_sandbox

# As the image's `airflow` user, pinning Airflow so that pip cannot move it (Airflow's advice for
# extending the image). AIRFLOW_VERSION is set by the base image.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/autoenhance[sandbox]"

# The sandbox's --data-dir, owned by `airflow`: Docker fills an empty named volume (compose's
# `sandbox-data`) from the image, owner included, so the sandbox can write there.
RUN mkdir -p /home/airflow/sandbox-data

# Points `autoenhance_default` at the sandbox, or at the real API when AUTOENHANCE_API_KEY is set,
# then runs Airflow's own entrypoint (the script is executable in git; COPY keeps the mode).
COPY --chown=airflow:0 scripts/docker-entrypoint.sh /opt/autoenhance/docker-entrypoint.sh
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/autoenhance/docker-entrypoint.sh"]
CMD []
