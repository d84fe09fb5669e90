"""Run the ``pmrl-bench`` CLI with the test components registered: the launcher tests' jobs run this script (a job is
a fresh process, which registers only what it loads itself).

    python launch_driver.py CLI-ARGS...

``pmrl-testing-tiny`` and ``pmrl-testing-infonce`` come from :mod:`pmrl_bench.testing`; ``launch-crash`` is an
objective whose first step ends its process, as a job killed by the node would end.
"""

from __future__ import annotations

import os
import sys

from pmrl_bench import hookimpl

CRASH_OBJECTIVE = "launch-crash"


def _crashing_objective():  # noqa: ANN202 - a torch module, built only where it trains
    import torch

    class Crash(torch.nn.Module):
        def forward(self, embeddings):  # noqa: ANN001, ANN202
            os._exit(3)  # no result, no line: what a job killed by its node leaves behind

    return Crash()


class CrashingObjective:
    @hookimpl
    def register_objectives(self, register):  # noqa: ANN001, ANN201
        register(CRASH_OBJECTIVE, _crashing_objective, description="ends its process at the first step")


if __name__ == "__main__":
    from pmrl_bench.cli import main
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.testing.helpers import ensure_helpers

    ensure_helpers(MANAGER)
    MANAGER.register_plugin(CrashingObjective(), name="launch-crash")
    sys.exit(main(sys.argv[1:]))
