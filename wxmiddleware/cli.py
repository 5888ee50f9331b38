"""The ``wxmiddleware`` command: a demo, the fake WeChat server, session administration.

Each group of subcommands lives in a module of its own: ``demo`` and ``fake-wechat`` in
:mod:`wxmiddleware._cli_demo`, ``sessions`` in :mod:`wxmiddleware._cli_sessions`, ``store`` in
:mod:`wxmiddleware._cli_store`; this module builds the parser and runs the command.
"""

from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence

from . import __version__
from ._cli_demo import add_demo_parsers
from ._cli_sessions import add_sessions_parser
from ._cli_store import add_store_parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wxmiddleware`` command."""
    parser = argparse.ArgumentParser(
        prog="wxmiddleware", description="WeChat mini-program login middleware tools."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_parsers(commands)
    add_sessions_parser(commands)
    add_store_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``wxmiddleware`` console script."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
