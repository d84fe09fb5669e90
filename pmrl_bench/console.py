"""What pmrl-bench writes on a terminal: one line per message on stderr, and the one function that makes any text
safe to show there.

Strings reach the terminal from places pmrl-bench does not control: result files (``show`` reads any results
directory, a pull request's included), plugins' names and descriptions, paths and command-line input. A control
character in one of them is an instruction to the terminal (``ESC[2J`` clears it, an OSC sequence sets the window
title or the clipboard), so every terminal writer passes its text through :func:`escape`, which writes each control
character as visible text, and echoes input through :func:`shorten`, which cuts it to a readable length.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

from pmrl_bench.redact import mask_secrets

PROG = "pmrl-bench"

# C0 and C1 controls (ESC, CSI, OSC, BEL, CR, backspace, ...), DEL, the Unicode line and paragraph separators, and the
# bidirectional controls that reorder what a terminal shows ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

ECHO_LIMIT = 120  # characters of one echoed value (a name, a path, a parameter value)
LINE_LIMIT = 800  # characters of one message line before its long values are cut
PROGRESS_LIMIT = 60  # characters of a progress bar's description
_WORD = re.compile(r"\S+")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: object, keep: str = "") -> str:
    """``str(text)`` with every control character written as visible text, as Python writes it in a string literal
    (ESC as ``\\x1b``, a newline as ``\\n``); characters in ``keep`` (``"\\n"`` for a multi-line table) stay."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _visible(m), str(text))


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut in the middle to about ``limit`` characters, saying how many were cut; the start and the end of
    a long value are what identify it."""
    if len(text) <= limit:
        return text
    keep = max(limit - 30, 2)
    cut = len(text) - keep
    return f"{text[:keep - keep // 3]}…[{cut} characters cut]…{text[len(text) - keep // 3:]}"


def shorten_words(text: str, limit: int = ECHO_LIMIT) -> str:
    """Each run of non-blank characters in ``text`` longer than ``limit`` cut by :func:`shorten`."""
    return _WORD.sub(lambda m: shorten(m.group(), limit), text)


def progress_label(text: object) -> str:
    """A progress bar's description (a run id, a study name: user-supplied names in them): escaped, and cut to
    :data:`PROGRESS_LIMIT` characters so that the bar stays on its line."""
    return shorten(escape(text), PROGRESS_LIMIT)


def one_line(message: object) -> str:
    """``message`` as one safe, readable line: controls escaped (a newline too), and, if the line is long, each long
    value in it cut to :data:`ECHO_LIMIT` characters, then the whole line to :data:`LINE_LIMIT`. The password of any
    URL in it is masked (:func:`pmrl_bench.redact.mask_secrets`): error lines end up in public CI logs."""
    line = escape(mask_secrets(str(message)))
    if len(line) > LINE_LIMIT:  # an echoed input of 10 000 characters, say; a normal line keeps its paths whole
        line = shorten_words(line)
    return shorten(line, LINE_LIMIT)


def say(message: str) -> None:
    """One line on stderr, ``pmrl-bench: <message>``, whatever the message holds (a path with a newline or an escape
    sequence in it stays on its line, as text)."""
    print(f"{PROG}: {one_line(message)}", file=sys.stderr)


def write(text: object, file: TextIO | None = None, end: str = "\n") -> None:
    """Print a table, a listing or a summary line on ``file`` (default stdout) with every control character but the
    line breaks escaped."""
    print(escape(text, keep="\n"), file=sys.stdout if file is None else file, end=end)
