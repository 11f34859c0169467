"""The ``capcal`` command line: argument parsing and messages only; the work is in library functions.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which sets
``func=run`` on its parser) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import CapcalError

SUBCOMMANDS = ["list", "show", "grade", "run", "import", "export", "leaderboard", "compare", "route", "study"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="capcal", description="Measure how well a language model's confidence predicts its capability.")
    parser.add_argument("--version", action="version", version=f"capcal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}_cmd":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``capcal`` script. User errors print one line and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CapcalError as exc:
        print(f"capcal: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("capcal: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
