"""The README's verdict paragraphs quote only numbers the generated pages hold.

Paragraphs between ``<!-- verdicts:begin -->`` and ``<!-- verdicts:end -->`` (there may be several blocks) state
results; every number in them (integers, decimals, signed values, p-values such as 0.013, counts such as 8/10) must
appear verbatim on at least one page under leaderboards/ (``*.md``), so a rebuilt leaderboard that moves a number
makes this test name it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!--\s*verdicts:begin\s*-->(.*?)<!--\s*verdicts:end\s*-->", re.DOTALL)
# A number: optional sign, digits, optional decimals, optionally "/count"; not part of a longer number or a word.
NUMBER = re.compile(r"(?<![A-Za-z_\d])(?<!\d\.)[-+−]?\d+(?:\.\d+)?(?:/\d+)?(?!\w|\.\d)")


def verdict_blocks(readme: str) -> list[str]:
    """The text of every verdicts block of the README."""
    return BLOCK.findall(readme)


def numbers(text: str) -> list[str]:
    """Every number in ``text`` as written, in order, each once."""
    return list(dict.fromkeys(NUMBER.findall(text)))


def _on_page(number: str, pages: Iterable[str]) -> bool:
    # verbatim, and not inside a longer number ("3.2" is not found in "13.25" or "3.21")
    pattern = re.compile(rf"(?<!\d)(?<!\d\.){re.escape(number)}(?!\d|\.\d)")
    return any(pattern.search(page) for page in pages)


def missing_numbers(readme: str, pages: Iterable[str]) -> list[str]:
    """The numbers of the README's verdict blocks that no page holds verbatim."""
    pages = list(pages)
    return [n for block in verdict_blocks(readme) for n in numbers(block) if not _on_page(n, pages)]


def test_the_checker_finds_a_changed_digit(tmp_path):
    page = ("| `x` | `infonce` | default | +3.2 [+1.0, +5.1] | -0.4..+6.0 | 8/10 | 0.013 | 0.002 | 0.041 | beats |\n"
            "Holm over 187 tested comparisons.\n")
    readme = ("Intro 12345 is outside any block.\n<!-- verdicts:begin -->\n"
              "x beats infonce by +3.2 points [+1.0, +5.1] (8/10 seeds, p = 0.013, Holm p = 0.041; per seed "
              "-0.4..+6.0), one of 187 comparisons.\n<!-- verdicts:end -->\n")
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    (tmp_path / "t.md").write_text(page, encoding="utf-8")
    copy = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert numbers(verdict_blocks(copy)[0])[:3] == ["+3.2", "+1.0", "+5.1"]
    assert missing_numbers(copy, [page]) == []
    for before, after in (("0.013", "0.018"), ("8/10", "7/10"), ("-0.4", "-0.5"), ("187", "188"), ("+3.2", "+3.7")):
        broken = copy.replace(before, after)
        assert missing_numbers(broken, [page]) == [after], before
    assert missing_numbers(copy.replace("0.041", "0.04"), [page]) == ["0.04"]  # a prefix is not the number
    assert missing_numbers("no blocks here 42", [page]) == []


def test_several_blocks_are_all_checked():
    readme = ("<!-- verdicts:begin -->a 1.5<!-- verdicts:end --> between 9.9 "
              "<!-- verdicts:begin -->b 2.5 and 8/10<!-- verdicts:end -->")
    assert len(verdict_blocks(readme)) == 2
    assert missing_numbers(readme, ["1.5 2.5"]) == ["8/10"]


def test_readme_verdict_numbers_are_on_the_generated_pages():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "leaderboards").glob("*.md"))]
    # THIS ASSERTION FAILS UNTIL THE README HAS ITS VERDICT PARAGRAPHS: wrap them in
    # <!-- verdicts:begin --> ... <!-- verdicts:end --> (a README without any such block is an error, on purpose).
    assert verdict_blocks(readme), "README.md has no <!-- verdicts:begin --> ... <!-- verdicts:end --> block"
    assert pages, "no generated pages under leaderboards/"
    missing = missing_numbers(readme, pages)
    if missing:
        pytest.fail(f"numbers in the README's verdict blocks that no page under leaderboards/ holds: {missing}")
