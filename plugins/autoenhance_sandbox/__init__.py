"""A local, faithful stand-in for the Autoenhance.ai v3 API (like moto for AWS; no Airflow imports).

Start it with ``autoenhance-sandbox`` (:mod:`~autoenhance_sandbox.cli`), in tests with
:func:`autoenhance_sandbox.testing.run_sandbox` or the fixtures in
:mod:`~autoenhance_sandbox.pytest_plugin`.

One server process answers three "hosts", routed by path:

- the API under ``/v3/...`` (any host name);
- presigned uploads ``PUT /_storage/{object_key}?X-Amz-Algorithm=...&X-Amz-Signature=<hmac>``;
- downloads ``GET /_assets/{token}`` (the target of the 302 from the download endpoints).

Upload and asset URLs deliberately use the *other* loopback name (``127.0.0.1`` <-> ``localhost``)
so clients cross an origin boundary as with the real API and S3; ``asset_base_url`` overrides it.
``/_sandbox/*`` holds admin endpoints (health, stats, reset, faults, contract options, clock,
seed, webhooks, rejections); ``GET /orders/{id}`` is an HTML order page like the web app's.
Undocumented behaviours are options (:data:`~autoenhance_sandbox.config.CONTRACT_CHOICES`); the
official SDK ``autoenhance==1.1.0`` is the oracle (``tests/contract``). See docs/sandbox.md.

Where to look: :mod:`.state` (model by resource, timeline, status/grouping rules, 409 cases),
:mod:`.schemas` (input validation), :mod:`.versions` (``x-api-version`` switches),
:mod:`.faults` and :mod:`.middleware` (fault injection, stats keys), :mod:`.storage` (signatures,
streaming), :mod:`.render` (Pillow), :mod:`.assets`, :mod:`.background` (webhooks, saving),
:mod:`.persistence`, :mod:`.pages`. Heavy imports (FastAPI, Pillow) are deferred so this package stays cheap.
"""

from __future__ import annotations

from autoenhance_sandbox.config import SandboxConfig

__all__ = ["SandboxConfig"]
