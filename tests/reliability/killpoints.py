"""Run the real ``pmrl-bench`` CLI in this process with one deterministic fault point (reliability tests).

    python killpoints.py POINT N CLI-ARGS...

POINT says where the process stops, on the Nth time it gets there:

* ``train``            SIGKILL inside the Nth ``loss.backward()`` of the sweep (mid-training)
* ``result-midwrite``  SIGKILL with half of the Nth result written to its temporary file
* ``result-renaming``  SIGKILL with the Nth result's temporary complete but not yet renamed into place
* ``result-written``   SIGKILL just after the Nth result file is in place
* ``board-midwrite``   SIGKILL with half of the first leaderboard page written over the real page (worst case)
* ``board-partial``    SIGKILL after half of the leaderboard pages are written
* ``pause``            at the Nth ``loss.backward()``, create the file ``$PMRL_TEST_PAUSED`` and sleep, so a test
                       can send a signal (SIGTERM, SIGINT) at a known point
* ``board-pause``      the same, as the leaderboards are about to be written (N is ignored)

Faults are injected by wrapping functions in this process only; nothing in pmrl-bench knows about them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _on_nth(n: int):
    calls = 0

    def hit() -> bool:
        nonlocal calls
        calls += 1
        return calls == n

    return hit


def install(point: str, n: int) -> None:
    import torch

    import pmrl_bench.leaderboard.rebuild as leaderboard  # the module whose name the rebuild calls
    from pmrl_bench.results.store import ResultStore

    hit = _on_nth(n)
    if point in ("train", "pause"):
        backward = torch.Tensor.backward

        def faulty_backward(self, *args, **kwargs):
            if hit():
                if point == "train":
                    _die()
                Path(os.environ["PMRL_TEST_PAUSED"]).write_text("paused\n")
                time.sleep(120)  # the test signals us now
            return backward(self, *args, **kwargs)

        torch.Tensor.backward = faulty_backward
    elif point in ("result-midwrite", "result-renaming"):
        write_file = ResultStore._write_file

        def faulty_write_file(fd: int, data: bytes) -> None:
            if not hit():
                return write_file(fd, data)
            if point == "result-midwrite":
                os.write(fd, data[: len(data) // 2])
                os.fsync(fd)
                _die()
            write_file(fd, data)
            _die()

        ResultStore._write_file = staticmethod(faulty_write_file)
    elif point == "result-written":
        write = ResultStore.write

        def faulty_write(self, result):
            path = write(self, result)
            if hit():
                _die()
            return path

        ResultStore.write = faulty_write
    elif point == "board-pause":
        write_leaderboards = leaderboard.write_leaderboards

        def paused_write_leaderboards(out_dir, pages):
            Path(os.environ["PMRL_TEST_PAUSED"]).write_text("paused\n")
            time.sleep(120)  # the test signals us now
            return write_leaderboards(out_dir, pages)

        leaderboard.write_leaderboards = paused_write_leaderboards
    elif point in ("board-midwrite", "board-partial"):
        write_leaderboards = leaderboard.write_leaderboards

        def faulty_write_leaderboards(out_dir, pages):
            names = sorted(pages)
            if point == "board-midwrite":
                out_dir.mkdir(parents=True, exist_ok=True)
                first = names[0]
                (out_dir / first).write_text(pages[first][: len(pages[first]) // 2], encoding="utf-8")
            else:
                write_leaderboards(out_dir, {k: pages[k] for k in names[: max(1, len(names) // 2)]})
            _die()

        leaderboard.write_leaderboards = faulty_write_leaderboards
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    install(sys.argv[1], int(sys.argv[2]))
    from pmrl_bench.cli import main

    sys.exit(main(sys.argv[3:]))
