"""``manymodels up [--detach] [--json-logs]``, ``manymodels down`` and ``manymodels keys``: the local host.

``up`` runs ``function_app.py`` with every trigger on this machine (Azurite is started when
``AzureWebJobsStorage=UseDevelopmentStorage=true`` and nothing listens yet). In the foreground,
Ctrl-C or SIGTERM stops everything it started; with ``--detach`` it runs in the background until
``manymodels down``, which also stops the local scoring services, running pipeline runners and
Azurite.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from shared.commands.output import emit_json, info
from shared.devhost import keys as host_keys
from shared.devhost import logs, process
from shared.devhost.arguments import add_host_arguments, host_argv, host_options
from shared.devhost.hostconfig import load_local_settings
from shared.errors import NotFound
from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.devhost.host import LocalHost


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="run function_app.py locally: HTTP, Event Grid, blob, queue and timer triggers")
    add_host_arguments(up)
    up.add_argument("--detach", action="store_true", help="run in the background (stop with `manymodels down`)")
    up.add_argument("--json", action="store_true", help="with --detach: print the host's pid and URL as JSON")
    up.set_defaults(func=_up)

    down = sub.add_parser("down", help="stop the local host, scoring services, pipeline runners and Azurite")
    down.add_argument("--keep-storage", action="store_true", help="leave Azurite running")
    down.add_argument("--json", action="store_true", help="print what was stopped as JSON")
    down.set_defaults(func=_down)

    keys = sub.add_parser("keys", help="print the local host's function key (x-functions-key header or ?code=)")
    keys.add_argument("--json", action="store_true", help="print every key: function, master, eventgrid_extension")
    keys.set_defaults(func=_keys)


def _up(args: argparse.Namespace) -> int:
    if load_local_settings(Path(args.app).resolve().parent):
        get_settings.cache_clear()  # local.settings.json may set MANYMODELS_HOME, AzureWebJobsStorage...
    settings = get_settings()
    if args.detach:
        state = process.start_detached(settings, host_argv(args))
        if args.json:
            emit_json({"pid": state.pid, "url": state.url, "log": str(process.log_file(settings.home))})
        else:
            print(f"host running in the background: {state.url} (pid {state.pid})")
            print(f"logs: {process.log_file(settings.home)}; function key: `manymodels keys`; "
                  "stop everything with `manymodels down`")
        return 0

    logs.configure(json_logs=args.json_logs)

    def ready(host: LocalHost) -> None:
        info(f"host running on {host.url} (Ctrl-C stops it and everything it started); "
             "function key: `manymodels keys`")

    return process.serve(settings, host_options(args), on_ready=ready, stop_stack=True)


def _down(args: argparse.Namespace) -> int:
    settings = get_settings()
    host = process.stop_host(settings.home)
    stopped = process.stop_stack_parts(settings, azurite_too=not args.keep_storage)
    if args.json:
        emit_json({"host": host.pid if host else None, **stopped})
        return 0
    print(f"host stopped (pid {host.pid})" if host else "no host was running")
    if stopped["services"]:
        print(f"scoring services stopped: {', '.join(stopped['services'])}")
    if stopped["runners"]:
        print(f"pipeline runners stopped: {', '.join(stopped['runners'])}")
    print("Azurite stopped" if stopped["azurite"] else "Azurite was not running (or was not started for this home)")
    return 0


def _keys(args: argparse.Namespace) -> int:
    home = get_settings().home
    if not host_keys.keys_file(home).exists():
        raise NotFound(f"no host keys in {home} yet: start the host once with `manymodels up`")
    keys = host_keys.load_or_create(home)
    if args.json:
        emit_json({"function": keys.function, "master": keys.master,
                   host_keys.EVENTGRID_SYSTEM_KEY: keys.eventgrid})
    else:
        print(keys.function)
    return 0
