"""Markdown escaping for the leaderboard pages: every string that comes from a result file (commands, devices,
versions, plugin and parameter names, view, direction and probe names, skipped file names) passes through here.

A page is built from :class:`Markdown` (our own markup: bold numbers, code spans, links) and plain strings;
:func:`cell` leaves the first alone and escapes the second, so a ``|`` cannot split a table row, a line break
cannot start a heading and ``<script>`` cannot become HTML.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote


class Markdown(str):
    """Text that is already markdown (made by this module or by the formatters): written into a page as it is."""


# Anything that ends a line for a markdown renderer or a text editor, and other control characters.
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# Backslash-escapable punctuation that could start emphasis, code, links, images, math, headings or split a
# table cell (CommonMark lets every ASCII punctuation character be escaped, so the escape is always literal).
_SPECIAL = re.compile(r"([\\`*_\[\]#|!~$])")
# What a code span cannot show verbatim in a table cell (| splits the row even there) or without raw HTML.
_NOT_IN_CODE = re.compile(r"[`|<>&\\\x00-\x1f\x7f\x85\u2028\u2029]")


def text(value: object) -> Markdown:
    """``value`` as inline text: one line, HTML characters as entities, markdown punctuation escaped."""
    one_line = _BREAKS.sub(" ", str(value))
    return Markdown(_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False)))


def code(value: object) -> Markdown:
    """``value`` as inline code; as escaped :func:`text` when it holds characters a code span cannot show safely."""
    raw = str(value)
    if not raw.strip() or _NOT_IN_CODE.search(raw):
        return text(raw)
    return Markdown(f"`{raw}`")


def cell(value: object) -> Markdown:
    """A table cell or header: markup as it is, anything else escaped as :func:`text`."""
    return value if isinstance(value, Markdown) else text(value)


def link(label: object, target: str) -> Markdown:
    """``[label](target)`` with the label escaped and the target percent-encoded (a file beside the page,
    optionally with a `#anchor` of ours)."""
    return Markdown(f"[{cell(label)}]({quote(target, safe='/+#')})")


def image(caption: object, target: str) -> Markdown:
    return Markdown(f"!{link(caption, target)}")
