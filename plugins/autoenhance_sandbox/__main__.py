"""``python -m autoenhance_sandbox`` = the ``autoenhance-sandbox`` console script."""

from __future__ import annotations

from autoenhance_sandbox.cli import main

raise SystemExit(main())
