"""What a sweep did: one :class:`RunReport` per attempted run, folded into the sweep's :class:`SweepSummary`.

The executor returns a report for every run it attempts, in this process or in a worker process; the sweep (serial
or parallel) folds them, so both count the same way.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

RAN = ("ok", "diverged", "failed", "not_applicable")


@dataclass
class RunReport:
    """What one attempt of one run did."""

    run_id: str
    ran: str | None = None  # "ok", "diverged" or "failed" when this attempt trained it; or "not_applicable"
    reused: str | None = None  # the stored status when it was already done
    written: list[Path] = field(default_factory=list)
    retrained: list[str] = field(default_factory=list)  # announced as retrained on changed data
    init_trained: list[str] = field(default_factory=list)  # warm-start stages this attempt trained
    init_reused: list[str] = field(default_factory=list)  # and read back from the results directory


@dataclass
class SweepSummary:
    """Counts of one sweep: ok/diverged/failed were run here, ``not_applicable`` were recorded as such (the objective
    does not accept the task's number of modalities); ``skipped`` were already done (``reused`` by status)."""

    ok: int = 0
    diverged: int = 0
    failed: int = 0
    not_applicable: int = 0
    skipped: int = 0
    written: list[Path] = field(default_factory=list)
    planned: int = 0
    reused: dict[str, int] = field(default_factory=dict)
    # Warm-start stages by name: each --jobs worker reads a stage it needs once, so names, not counts, are folded.
    init_trained: set[str] = field(default_factory=set)
    init_reused: set[str] = field(default_factory=set)
    retrained: list[str] = field(default_factory=list)  # runs whose stored result was for other data
    lost: list[str] = field(default_factory=list)  # runs whose worker process died (--jobs); the next run trains them

    def add(self, report: RunReport) -> None:
        """Fold one attempt's report into the counts."""
        if report.ran is not None:
            setattr(self, report.ran, getattr(self, report.ran) + 1)
        elif report.reused is not None:
            self.skipped += 1
            self.reused[report.reused] = self.reused.get(report.reused, 0) + 1
        self.written.extend(report.written)
        self.retrained.extend(r for r in report.retrained if r not in self.retrained)
        self.init_trained.update(report.init_trained)
        self.init_reused.update(report.init_reused)

    @property
    def init_only_reused(self) -> set[str]:
        """Stages this sweep only read back: one that a worker trained and another read was trained by this sweep."""
        return self.init_reused - self.init_trained

    @property
    def all_ok(self) -> bool:
        # A resumed sweep reports what an uninterrupted one would: a kept diverged result still counts.
        return self.diverged_total == 0 and self.failed_total == 0 and not self.lost

    @property
    def diverged_total(self) -> int:
        return self.diverged + self.reused.get("diverged", 0)

    @property
    def failed_total(self) -> int:  # a failed result is reused only when a concurrent sweep just wrote it
        return self.failed + self.reused.get("failed", 0)

    @property
    def skipped_note(self) -> str:
        """`` (1 diverged)`` when results that were already done include diverged (or failed) ones, else empty."""
        notes = [f"{self.reused[s]} {s}" for s in ("diverged", "failed") if self.reused.get(s)]
        return f" ({', '.join(notes)})" if notes else ""


def interrupted_message(signum: int, summary: SweepSummary, running: Sequence[str], root: Path) -> str:
    """The one line a stopped sweep prints: what stopped it, the runs it abandoned, what finished and remains."""
    s = summary
    done = s.ok + s.diverged + s.failed + s.not_applicable
    remaining = s.planned - done - s.skipped
    what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    during = ""
    if len(running) == 1:
        during = f" during {running[0]} (not saved; it reruns)"
    elif running:
        during = f" during {', '.join(running)} (not saved; they rerun)"
    return (
        f"interrupted by {what}{during}: this sweep finished {done} of {s.planned} runs "
        f"({s.ok} ok, {s.diverged} diverged, {s.failed} failed) and found {s.skipped} already done; "
        f"{remaining} remain; results in {root}/; run the same command again to resume "
        "(leaderboards were not rebuilt)"
    )
