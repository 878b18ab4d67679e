"""``autoenhance-sandbox``: run the fake API as a standalone server.

Binds the listening socket itself (so ``--port 0`` picks a free port and the printed URL is
right), prints one line, then serves with uvicorn. The API key is never printed, only where it
came from. Heavy imports happen after argument parsing to keep start-up well under 3 s.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence

from autoenhance_sandbox.config import (
    CONTRACT_CHOICES,
    CREDIT_STATUSES,
    ENV_PREFIX,
    LIMIT_NAMES,
    SandboxConfig,
    limits_from_env,
    options_from_env,
)
from autoenhance_sandbox.faults import FAULT_KINDS, FAULT_PHASES

ENV_API_KEY = "AUTOENHANCE_SANDBOX_API_KEY"
DEFAULT_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    defaults = SandboxConfig()
    p = argparse.ArgumentParser(
        prog="autoenhance-sandbox", description="Local fake of the Autoenhance.ai v3 API."
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 = any free port)")
    p.add_argument(
        "--api-key", default=None, help=f"accepted x-api-key (default: ${ENV_API_KEY} or sandbox-key)"
    )
    p.add_argument("--processing-seconds", type=float, default=defaults.processing_seconds)
    p.add_argument("--merge-seconds", type=float, default=defaults.merge_seconds)
    p.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    p.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help="comma-separated subset of " + ",".join(FAULT_KINDS),
    )
    p.add_argument("--fault-phase", choices=FAULT_PHASES, default=defaults.fault_phase)
    p.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds)
    p.add_argument("--seed", type=int, default=None, help="fault-injection seed (reproducible faults)")
    p.add_argument("--data-dir", default=None, help="persist state and blobs here (survives restarts)")
    p.add_argument("--webhook-url", default=None)
    p.add_argument("--webhook-token", default=None, help="sent as the Authorization header of webhooks")
    p.add_argument(
        "--credits", type=int, default=None, help="credits for full-size purchases (default unlimited)"
    )
    p.add_argument("--asset-base-url", default=None, help="base URL handed out for uploads and downloads")
    contract = p.add_argument_group(
        "contract options", f"undocumented behaviours (also ${ENV_PREFIX}<NAME>; see docs/sandbox.md)"
    )
    for name, choices in CONTRACT_CHOICES.items():
        contract.add_argument(
            f"--{name.replace('_', '-')}", choices=choices, default=None, help=f"default {choices[0]}"
        )
    contract.add_argument(
        "--out-of-credits-status", type=int, choices=CREDIT_STATUSES, default=None, help="default 402"
    )
    limits = p.add_argument_group(
        "account limits", f"docs 'Rate Limits'; off unless set (also ${ENV_PREFIX}<NAME>; 'off' = none)"
    )
    limits.add_argument("--rate-limit-per-second", default=None, help="requests/s per client IP (API: 300)")
    limits.add_argument("--rate-limit-burst", default=None, help="token bucket size (default: one second)")
    limits.add_argument(
        "--duplicate-name-limit", default=None, help="registrations of one file name per hour (API: 30)"
    )
    limits.add_argument(
        "--daily-enhancement-limit", default=None, help="enhancements per sandbox day (API: 500)"
    )
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return p


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen before uvicorn starts, so the port is known and connections queue."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.api_key:
        api_key, source = args.api_key, "--api-key"
    elif os.environ.get(ENV_API_KEY):
        api_key, source = os.environ[ENV_API_KEY], ENV_API_KEY
    else:
        api_key, source = SandboxConfig().api_key, "the built-in default"
    config = SandboxConfig(
        api_key=api_key,
        processing_seconds=args.processing_seconds,
        merge_seconds=args.merge_seconds,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k.strip()),
        fault_phase=args.fault_phase,
        slow_seconds=args.slow_seconds,
        seed=args.seed,
        data_dir=args.data_dir,
        webhook_url=args.webhook_url,
        webhook_token=args.webhook_token,
        credits=args.credits,
        asset_base_url=args.asset_base_url,
    )
    options = options_from_env(dict(os.environ))  # flags win over the environment
    options.update(
        {name: getattr(args, name) for name in config.options() if getattr(args, name) is not None}
    )
    config.set_options(**options)
    limit_values = limits_from_env(dict(os.environ))
    limit_values.update(
        {name: getattr(args, name) for name in LIMIT_NAMES if getattr(args, name) is not None}
    )
    try:
        config.set_limits(**limit_values)
    except ValueError as exc:
        build_parser().error(str(exc))
    sock = bind_socket(args.host, args.port)
    port = sock.getsockname()[1]
    display_host = f"[{args.host}]" if ":" in args.host else args.host

    import uvicorn

    from autoenhance_sandbox.app import create_app

    app = create_app(config)
    print(
        f"Autoenhance sandbox listening on http://{display_host}:{port} (API key from {source})", flush=True
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on", timeout_keep_alive=30)
    )
    server.run(sockets=[sock])
    return 0
