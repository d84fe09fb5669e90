"""What the command line says beside its tables: one line per message on stderr (:mod:`pmrl_bench.console`)."""

from __future__ import annotations

from pmrl_bench.console import PROG, say

__all__ = ["PROG", "say", "warn_plugin_failures"]


def warn_plugin_failures() -> None:
    from pmrl_bench.plugins import MANAGER

    for failure in MANAGER.failures:
        say(f"warning: {failure.message()}")
