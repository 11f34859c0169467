"""The help formatter of capcal's subcommands.

argparse's ``RawDescriptionHelpFormatter`` keeps the hand-laid-out ``examples:`` epilogs intact but also
leaves a one-paragraph description as a single line as wide as its source string. This formatter wraps
text that has no line breaks of its own (the descriptions) and keeps text that has them (the epilogs).
"""

from __future__ import annotations

import argparse


class WrappedDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wrap single-paragraph descriptions to the terminal width; keep multi-line epilogs verbatim."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)
