"""``manymodels storage start|stop|status``: the project's Azurite."""

from __future__ import annotations

import argparse

from shared.commands.output import emit_json
from shared.settings import get_settings
from shared.storage import azurite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("storage", help="start, stop or show the local Azurite storage emulator")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, text in (("start", _start, "start Azurite on 127.0.0.1 (ports 10000-10002)"),
                             ("stop", _stop, "stop it"), ("status", _status, "show whether it runs")):
        a = actions.add_parser(name, help=text)
        a.add_argument("--json", action="store_true", help="print one JSON object")
        a.set_defaults(func=func)


def _print(args: argparse.Namespace, proc: azurite.AzuriteProcess | None, verb: str) -> int:
    if args.json:
        emit_json({"running": proc is not None, **({"pid": proc.pid, "blob_port": proc.blob_port,
                                                    "queue_port": proc.queue_port,
                                                    "table_port": proc.table_port} if proc else {})})
    elif proc:
        print(f"Azurite {verb}: pid {proc.pid}, blob 127.0.0.1:{proc.blob_port}, "
              f"queue :{proc.queue_port}, table :{proc.table_port}, data in {proc.location}")
    else:
        print("Azurite is not running")
    return 0


def _start(args: argparse.Namespace) -> int:
    return _print(args, azurite.start(get_settings().home), "running")


def _stop(args: argparse.Namespace) -> int:
    stopped = azurite.stop(get_settings().home)
    if args.json:
        emit_json({"stopped": stopped})
    else:
        print("Azurite stopped" if stopped else "Azurite was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    return _print(args, azurite.status(get_settings().home), "is running")
