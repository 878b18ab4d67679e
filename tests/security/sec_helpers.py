"""Plain helpers of the security tests."""

from __future__ import annotations

#: A recognisable fake key: if it shows up anywhere, a grep finds it.
LEAK_CANARY_KEY = "ae-LEAK-CANARY-9f8e7d6c5b4a3210-do-not-print"
