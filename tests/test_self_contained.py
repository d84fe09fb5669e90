"""The repository speaks of itself: no tracked file points outside it or to the tracker that organised its work.

``git grep`` scans every tracked text file (binary files such as plots are skipped). Links to third-party GitHub
issues (``github.com/<owner>/<repo>/issues/N``) are fine: they cite someone else's discussion.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Spelt in pieces so that this file does not match its own patterns.
OUTSIDE_PATHS = ("shared" + "/reference", ".." + "/shared")
ISSUE = re.compile(r"\bissues?\s*#\s*\d+|\bissues?\s+\d+", re.IGNORECASE)
GITHUB_ISSUE_LINK = re.compile(r"(?:https?://)?github\.com/[\w.-]+/[\w.-]+/(?:issues|pull)/\d+\S*", re.IGNORECASE)


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)


def _require_checkout() -> None:
    if shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip("not a git checkout")


def tracked_lines(*patterns: str) -> list[str]:
    """``path:line:text`` of every tracked text line matching one of the fixed strings (case-insensitive)."""
    args = ["grep", "-n", "-I", "-i", "-F"]
    for pattern in patterns:
        args += ["-e", pattern]
    result = _git(*args)
    if result.returncode not in (0, 1):  # 1: no match
        raise RuntimeError(f"git grep failed: {result.stderr.strip()}")
    return result.stdout.splitlines()


def issue_references(lines: list[str]) -> list[str]:
    """The lines that cite an issue by number, once third-party GitHub issue links are taken out."""
    return [line for line in lines if ISSUE.search(GITHUB_ISSUE_LINK.sub("", line.split(":", 2)[-1]))]


def test_no_tracked_file_points_outside_the_repository():
    _require_checkout()
    hits = tracked_lines(*OUTSIDE_PATHS)
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_no_tracked_file_cites_an_issue_number():
    _require_checkout()
    hits = issue_references(tracked_lines("issue"))
    assert not hits, "issue numbers (say what the change does instead):\n" + "\n".join(hits)


def test_references_into_docs_objectives_resolve():
    """Every ``docs/objectives.md#anchor`` and every "pitfall(s) P<n>" cited in a tracked file exists on that page."""
    _require_checkout()
    page = (ROOT / "docs" / "objectives.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', page))
    pitfalls = set(re.findall(r"^### P(\d+)\. ", page, re.MULTILINE))
    assert {f"p{n}" for n in pitfalls} <= anchors  # every pitfall heading carries its anchor
    missing = []
    for line in tracked_lines("docs/objectives.md", "pitfall"):
        text = line.split(":", 2)[-1]
        for anchor in re.findall(r"docs/objectives\.md#([\w-]+)", text):
            if anchor not in anchors:
                missing.append(f"#{anchor} in {line}")
        for group in re.findall(r"pitfalls? (P\d+(?:(?:, | and |-|–)P\d+)*)", text):
            missing += [f"P{n} in {line}" for n in re.findall(r"P(\d+)", group) if n not in pitfalls]
    assert not missing, "references to docs/objectives.md that do not exist:\n" + "\n".join(missing)


# The examples spell the word in pieces ({w}), so that this tracked file does not match its own check.
@pytest.mark.parametrize(
    "template, flagged",
    [
        ("a.py:1:# fixed in {w} 3", True),
        ("a.py:1:see {W} #12 for the design", True),
        ("a.py:1:{w}s 4 and 5", True),
        ("a.py:1:upstream bug: https://github.com/pytorch/pytorch/{w}s/1234", False),
        ("a.py:1:github.com/ispamm/GRAM/{w}s/7 and {w} 7", True),
        ("a.py:1:an {w} with the data", False),
        ("a.py:1:t{w} 3", False),
        ("a.py:12:nothing here", False),
    ],
)
def test_issue_pattern_spares_third_party_links_only(template, flagged):
    line = template.format(w="iss" + "ue", W="Iss" + "ue")
    assert bool(issue_references([line])) is flagged
