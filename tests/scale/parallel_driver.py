"""Run the ``pmrl-bench`` CLI with the ``stoppable-align`` test objective registered (the ``--jobs`` tests).

    python parallel_driver.py CLI-ARGS...

Worker processes unpickle the objective's factory from ``parallel_helpers``, importable from this directory.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from parallel_helpers import StoppableObjectives

    from pmrl_bench.cli import main
    from pmrl_bench.plugins import MANAGER

    MANAGER.register_plugin(StoppableObjectives(), name="stoppable-objectives")
    sys.exit(main(sys.argv[1:]))
