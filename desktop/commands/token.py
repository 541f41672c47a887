"""``classroom-console token``: a classroom token signed with the sandbox's secret.

The token alone goes to stdout, so ``TOKEN=$(classroom-console token ...)`` works; a mistake in
the arguments is one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from backend import tokens
from desktop.sandbox import secret

EXIT_OK = 0
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "token",
        help="print a classroom token signed with the local sandbox's secret",
        description=(
            "Print a classroom token (HS256 JWT) signed with the local sandbox's secret, and "
            "nothing else, so TOKEN=$(classroom-console token ...) works."
        ),
    )
    parser.add_argument("--sub", required=True, metavar="ID", help="the user id")
    parser.add_argument("--role", required=True, help="student, teacher or support")
    parser.add_argument(
        "--room", required=True, metavar="ROOM", help='the room it may join ("*": support only)'
    )
    parser.add_argument(
        "--ttl", default="3600", metavar="SECONDS", help="seconds it stays valid (default 3600)"
    )
    parser.add_argument("--name", help="display name")
    parser.set_defaults(func=run)

    def one_sentence(message: str) -> NoReturn:
        print(f"classroom-console token: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    # argparse would print the usage first; a script reading stderr wants the one sentence.
    parser.error = one_sentence


def _usage(message: str) -> int:
    print(f"classroom-console token: {message}.", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    if not args.sub.strip():
        return _usage("--sub must not be empty")
    if args.role not in tokens.ROLES:
        return _usage(f"--role must be one of {', '.join(tokens.ROLES)}, not {args.role!r}")
    try:
        ttl = int(args.ttl)
    except ValueError:
        return _usage(f"--ttl must be a whole number of seconds, not {args.ttl!r}")
    try:
        token = tokens.mint(
            secret.load().value,
            sub=args.sub,
            role=args.role,
            rooms=[args.room],
            ttl=ttl,
            name=args.name,
        )
    except ValueError as error:
        return _usage(str(error))
    print(token)
    return EXIT_OK
