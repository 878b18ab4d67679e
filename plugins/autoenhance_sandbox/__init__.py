"""A local, faithful stand-in for the Autoenhance.ai v3 API (no Airflow imports)."""

from __future__ import annotations
