"""The ``manymodels`` command. Each sub-command lives in ``shared/commands/<area>.py`` and
registers itself with ``register(subparsers)``; this module only wires them and turns product
errors into a one-line message and a non-zero exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from shared.errors import ManyModelsError

COMMAND_MODULES = (
    "shared.commands.storage",  # storage start|stop|status
    "shared.commands.data",  # data simulate|validate|upload
    "shared.commands.status",  # status
    "shared.commands.pipelines",  # train, forecast
    "shared.commands.plan",  # plan
    "shared.commands.deploy",  # deploy
    "shared.commands.host",  # up, down, keys
    "shared.commands.demo",  # demo
    "shared.commands.events",  # events subscribe|tail
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manymodels",
        description="Keep thousands of per-series forecasting models trained, deployed and answering.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue  # an area not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ManyModelsError as e:
        print(f"manymodels: error: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("manymodels: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
