"""What each leaderboard file depends on, hashed into the key it is cached under (:mod:`pmrl_bench.leaderboard.cache`).

A task's page and plots depend on: the task's name and the file stem of its page; the content of each of its results
with the row label it gets; the tuning records of the task; whether plots are drawn; and the code that builds them.
Labels are the one input shared across tasks (a parameter that varies between the configurations of one objective
on any task names the rows on every task), which is why a key holds each result's label beside its content: a run
on one task that renames another task's rows changes that task's key too, so its page is rebuilt rather than left
stale. The overview depends on every task's inputs (their keys) and on the result files that were skipped.

The code is pmrl-bench's own source (every module of the package, so an uncommitted edit counts too) and the
versions of the libraries that compute or draw the pages. Over-inclusion only costs a rebuild; anything left out
would serve a stale page, so the key errs on the side of more.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

from pmrl_bench._version import __version__
from pmrl_bench.baselines.record import BaselineResult
from pmrl_bench.leaderboard.data import config_labels
from pmrl_bench.leaderboard.pages import Skipped
from pmrl_bench.leaderboard.tuning import Record
from pmrl_bench.results import RunResult

# The libraries whose versions can change a page's numbers or a plot's bytes.
LIBRARIES = ("numpy", "scipy", "pandas", "statsmodels", "scikit-posthocs", "matplotlib", "pillow", "pydantic")


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 over every source file of the package (path and content), the Python and library versions."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"{__version__}\0{sys.version}\0".encode())
    for lib in LIBRARIES:
        try:
            version = metadata.version(lib)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{lib}={version}\0".encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([code_fingerprint(), *parts], sort_keys=True).encode("utf-8")).hexdigest()


def _content(model: RunResult | Record) -> str:
    value = model[1] if isinstance(model, tuple) else model
    return hashlib.sha256(value.model_dump_json().encode("utf-8")).hexdigest()


def page_keys(results: Sequence[RunResult], stems: Mapping[str, str], tuning: Sequence[Record],
              problems: Iterable[Skipped | str], plots: bool,
              baselines: Mapping[str, Sequence[BaselineResult]] | None = None) -> tuple[dict[str, str], str]:
    """``({task: key of its page and plots}, key of the overview)`` for the pages ``results`` give; ``baselines``:
    the baselines shown on each task's page."""
    labels = config_labels(results)
    inputs: dict[str, list[tuple[str, str]]] = {task: [] for task in stems}
    for r in results:
        inputs[r.task].append((labels[(r.task, r.objective, r.config_id)], _content(r)))
    records: dict[str, list[str]] = {task: [] for task in stems}
    for record in tuning:
        if record[1].task in records:
            records[record[1].task].append(_content(record))
    shown = {task: sorted(b.model_dump_json() for b in found) for task, found in (baselines or {}).items()}
    keys = {task: _key("task", task, stems[task], plots, sorted(inputs[task]), sorted(records[task]),
                       *([shown[task]] if shown.get(task) else []))
            for task in sorted(stems)}
    skipped = [[p.path, p.reason] if isinstance(p, Skipped) else p for p in problems]
    return keys, _key("overview", sorted(keys.items()), skipped)
