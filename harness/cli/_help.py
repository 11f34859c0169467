"""The help formatter of capcal's subcommands.

argparse's ``RawDescriptionHelpFormatter`` keeps the hand-laid-out ``examples:`` epilogs intact but also
leaves a one-paragraph description as a single line as wide as its source string. This formatter wraps
text that has no line breaks of its own (the descriptions) and keeps text that has them (the epilogs).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class WrappedDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wrap single-paragraph descriptions to the terminal width; keep multi-line epilogs verbatim."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def add_command(subparsers, name: str, help: str, description: str,
                epilog: str | None = None) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``subparsers`` with capcal's help layout.

    ``help`` is the one-line summary of ``capcal --help``; ``description`` is prose whose line breaks do
    not matter (it is re-wrapped to the terminal); ``epilog`` keeps its own layout (the ``examples:``).
    """
    return subparsers.add_parser(name, help=help, description=" ".join(description.split()), epilog=epilog,
                                 formatter_class=WrappedDescriptionHelpFormatter)


def add_progress_flags(parser, help: str | None = "always show progress bars (default: only on a terminal)") -> None:
    """``--progress`` / ``--no-progress`` (``args.progress``: True, False, or None = only on a terminal)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None, help=help)
    group.add_argument("--no-progress", dest="progress", action="store_false")


def one_line_errors(parser: argparse.ArgumentParser, command: str) -> None:
    """Make ``parser`` report bad arguments as one line naming ``command``'s help, exit status 2."""

    def error(message: str) -> NoReturn:
        print(f"{command}: error: {message} (see `{command} --help`)", file=sys.stderr)
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]
