"""The ``classroom-console`` command: no subcommand opens the console, subcommands run headless.

Each subcommand lives in ``desktop.commands.<name>`` with ``register(subparsers)``, which adds
its parser and sets ``func``; ``func(args)`` returns the exit code. Expected failures are
``ConsoleError`` and print one sentence, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from desktop.services.errors import ConsoleError

COMMANDS = ("sandbox", "token", "deploy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classroom-console",
        description="Operate the classroom messaging backend. With no command, opens the console.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"desktop.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            from desktop.app import run

            return run()
        return int(args.func(args) or 0)
    except ConsoleError as error:
        print(f"classroom-console: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the last line of defence: a sentence, never a traceback
        from desktop.services.paths import config_dir

        log = config_dir() / "crash.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(log, encoding="utf-8")
            logging.getLogger("desktop.cli").addHandler(handler)
            logging.getLogger("desktop.cli").error("unexpected error", exc_info=error)
            handler.close()
            where = f" Details are in {log}."
        except OSError:
            where = ""
        print(
            f"classroom-console: unexpected error ({type(error).__name__}: {error}).{where}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
