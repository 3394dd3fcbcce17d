"""The host's command-line options, shared by ``manymodels up`` and ``python -m shared.devhost``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from shared.devhost.subscriptions import DEFAULT_FILE
from shared.paths import REPO_ROOT

if TYPE_CHECKING:
    from shared.devhost.host import HostOptions

DEFAULT_PORT = 7071


def add_host_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port on 127.0.0.1 (default 7071; 0: free)")
    parser.add_argument("--app", type=Path, default=REPO_ROOT / "function_app.py",
                        help="the Function App module (default: the repo's function_app.py)")
    parser.add_argument("--subscriptions", type=Path, default=DEFAULT_FILE,
                        help="Event Grid subscriptions file (default infra/eventgrid/subscriptions.json)")
    parser.add_argument("--json-logs", action="store_true", help="log one JSON object per line")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between blob/outbox polls")
    parser.add_argument("--max-delivery-attempts", type=int, default=8,
                        help="Event Grid attempts before dead-lettering (capped by each subscription's)")
    parser.add_argument("--retry-backoff", type=float, default=1.0,
                        help="seconds before the first Event Grid retry (doubles each attempt)")
    parser.add_argument("--duplicate-deliveries", action="store_true",
                        help="deliver every Event Grid event twice (to test idempotent handlers)")
    parser.add_argument("--queue-lease", type=float, default=30.0,
                        help="seconds a dequeued message stays hidden per (renewed) lease")


def host_argv(args: argparse.Namespace) -> list[str]:
    """The same options as arguments of ``python -m shared.devhost`` (for ``up --detach``)."""
    argv = ["--port", str(args.port), "--app", str(Path(args.app).resolve()),
            "--subscriptions", str(Path(args.subscriptions).resolve()), "--poll-interval", str(args.poll_interval),
            "--max-delivery-attempts", str(args.max_delivery_attempts), "--retry-backoff", str(args.retry_backoff),
            "--queue-lease", str(args.queue_lease)]
    if args.json_logs:
        argv.append("--json-logs")
    if args.duplicate_deliveries:
        argv.append("--duplicate-deliveries")
    return argv


def host_options(args: argparse.Namespace) -> HostOptions:
    """The options of an in-process host (imported here: the host module loads the Azure SDKs)."""
    from shared.devhost.eventgrid import DeliveryPolicy
    from shared.devhost.host import HostOptions

    policy = DeliveryPolicy(max_attempts=args.max_delivery_attempts, backoff_seconds=args.retry_backoff,
                            duplicate=args.duplicate_deliveries)
    return HostOptions(app_path=Path(args.app), port=args.port, subscriptions_path=Path(args.subscriptions),
                       poll_interval=args.poll_interval, delivery=policy, queue_lease_seconds=args.queue_lease)
