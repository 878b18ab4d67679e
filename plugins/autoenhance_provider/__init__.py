"""Apache Airflow provider for the Autoenhance.ai photo-enhancement API (v3).

Kept import-light on purpose: Airflow imports this package in every component
(scheduler, API server, triggerer) just to read provider metadata.
"""

from __future__ import annotations

__version__ = "0.2.0"
