"""What pmrl-bench says on the terminal outside its tables: one line per message on stderr, whatever it holds."""

from __future__ import annotations

import re
import sys

PROG = "pmrl-bench"

_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def say(message: str) -> None:
    """One line on stderr, whatever the message holds (a path with a newline in it stays on its line)."""
    print(f"{PROG}: {_LINE_BREAK.sub(lambda m: repr(m.group())[1:-1], message)}", file=sys.stderr)
