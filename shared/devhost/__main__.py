"""``python -m shared.devhost``: the host process ``manymodels up --detach`` starts in the background."""

from __future__ import annotations

import argparse
import sys

from shared.devhost import logs
from shared.devhost.arguments import add_host_arguments, host_options
from shared.devhost.hostconfig import load_local_settings
from shared.devhost.process import serve
from shared.errors import ManyModelsError
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.devhost", description="the manymodels local host")
    add_host_arguments(parser)
    args = parser.parse_args(argv)
    logs.configure(json_logs=args.json_logs, stream=sys.stdout)
    try:
        if load_local_settings(args.app.resolve().parent):
            get_settings.cache_clear()
        return serve(get_settings(), host_options(args))
    except ManyModelsError as e:
        print(f"manymodels host: error: {e.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
