"""Passwords out of everything pmrl-bench writes: messages, log lines, result files and tuned-parameter files.

A storage URL (``--storage postgresql://user:password@host/db``) or any other URL given on the command line can
carry a password, and what pmrl-bench writes is often public (CI logs, committed results, leaderboard pages). Every
writer of such text passes it through :func:`mask_secrets`: the password of a URL in the text becomes ``***``
(``user:***@host``), and the passwords of the URLs it is handed are masked wherever else they appear (a driver's
error message may quote one on its own). :func:`mask_url` is the form a known URL is shown in.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

MASK = "***"
# ``scheme://user:password@``: the password is everything up to the last "@" before the host; no blanks.
_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<password>[^\s@]+(?:@[^\s@/]*(?=@))*)@")
# A password shorter than this is masked only where it sits in a URL: masking every "pw" of a message would hide
# the message, not the secret (which a URL-shaped occurrence already gives away to no one).
MIN_LITERAL = 4


def password_of(url: str) -> str | None:
    """The password in ``url`` (as written, percent-encoding kept), or None."""
    match = _CREDENTIALS.search(url)
    return match["password"] if match else None


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``; a URL without one is returned unchanged.

    SQLAlchemy's own parser decides what the password is, as the storage itself will; a string it cannot parse is
    masked by pattern.
    """
    if password_of(url) is None:
        return url
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password is not None:
            return parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a database URL: the pattern below still finds the password
        pass
    return mask_secrets(url)


def mask_secrets(text: str, *urls: str | None) -> str:
    """``text`` with the password of every URL in it masked, and the passwords of ``urls`` masked wherever they
    appear in it (also percent-encoded or decoded)."""
    masked = _CREDENTIALS.sub(lambda m: f"{m['head']}{MASK}@", text)
    for url in urls:
        password = password_of(url) if url else None
        if not password:
            continue
        for form in {password, unquote(password), quote(unquote(password), safe="")}:
            if len(form) >= MIN_LITERAL:
                masked = masked.replace(form, MASK)
    return masked
