"""Everything pmrl-bench writes to a terminal is sanitised: a control character from a result file, a plugin or the
command line reaches the terminal as visible text (``ESC`` as ``\\x1b``), never as an instruction to it, and an
echoed input is cut to a readable length. ``--json`` output keeps the strings exact (JSON escapes them itself).

Each check runs over a family of hostile strings: CSI and OSC sequences (clear the screen, set the title, write the
clipboard), their 8-bit C1 forms, carriage return and backspace (overwrite what was shown), NUL and DEL, Unicode
line separators and bidirectional overrides.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from reliability_helpers import text_results

import pmrl_bench
from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.console import ECHO_LIMIT, escape, progress_label, shorten

# Independent of the implementation: what must never reach a terminal raw (a newline only between lines).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

HOSTILE = {
    "clear screen": "\x1b[2J\x1b[H",
    "osc title": "\x1b]0;pwned\x07",
    "osc clipboard": "\x1b]52;c;cm0gLXJmIH4=\x1b\\",
    "c1 csi": "\x9b2J\x9b31m",
    "c1 osc": "\x9d0;pwned\x9c",
    "carriage return": "harmless\rEVIL",
    "backspace": "abc\x08\x08\x08XYZ",
    "nul and del": "a\x00b\x7fc",
    "bidi override": "\u202etxt.exe",
    "line separators": "one\u2028two\x85three\nfour",
}
LONG = "A" * 10_000
MAX_LINE = 1_000  # an error line that echoes a 10 000-character input stays readable


def assert_safe(text: str) -> None:
    found = RAW_CONTROL.search(text)
    assert found is None, f"raw {found.group()!r} at {found.start()} in {text[max(0, found.start() - 40):][:80]!r}"


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_escape_writes_every_control_character_as_visible_text(text):
    shown = escape(text)
    assert_safe(shown)
    assert "\n" not in shown
    kept = escape(text, keep="\n")
    assert kept.count("\n") == text.count("\n")  # a table keeps its line breaks, nothing else
    assert_safe(kept)
    printable = [c for c in text if not RAW_CONTROL.match(c) and c != "\n"]
    assert re.search(".*".join(map(re.escape, printable)), shown)  # nothing else changes, in order
    if "\x1b" in text:
        assert "\\x1b" in shown


@pytest.mark.parametrize("text", [*HOSTILE.values(), LONG, "\x1b[2J" * 3_000],
                         ids=[*HOSTILE.keys(), "long", "long hostile"])
def test_progress_labels_are_safe_and_short(text):
    label = progress_label(f"synthetic/{text}/abc-seed0")
    assert_safe(label)
    assert "\n" not in label and len(label) <= 80
    assert label.startswith("synthetic/")


def test_shorten_keeps_both_ends_and_says_how_much_it_cut():
    text = "head-" + "x" * 5_000 + "-tail"
    short = shorten(text)
    assert len(short) <= ECHO_LIMIT and short.startswith("head-") and short.endswith("-tail")
    assert "characters cut" in short
    assert shorten("short") == "short"


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_show_escapes_strings_from_result_files(text, tmp_path, capsys):
    results = text_results(tmp_path / "results", text)
    assert main(["show", "--results", str(results)]) == 0
    captured = capsys.readouterr()
    assert_safe(captured.out)
    assert_safe(captured.err)
    assert escape(text) in captured.out  # shown, as text
    assert main(["show", "--results", str(results), "--json"]) == 0
    captured = capsys.readouterr()
    assert_safe(captured.err)  # the tables, on stderr under --json
    document = json.loads(captured.out)
    labels = [c["label"] for c in document["tasks"]["t"]["configurations"]]
    assert any(text in label for label in labels)  # --json keeps the string exact: nothing lost


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_skipped_files_and_compare_are_escaped(text, tmp_path, capsys):
    old = text_results(tmp_path / "old", "harmless")
    new = text_results(tmp_path / "new", text)
    name = text.replace("/", "_").replace("\x00", "_")  # a file name holding controls (all but / and NUL can)
    (new / "t" / "obj" / f"{name}.json").write_text("{not json")
    assert main(["show", "--results", str(new)]) == 0
    err = capsys.readouterr().err
    assert_safe(err)
    assert "warning: skipped" in err
    assert main(["compare", str(old), str(new)]) == 0
    captured = capsys.readouterr()
    assert_safe(captured.out)
    assert_safe(captured.err)


class HostileStrings:
    """Registers an objective whose description and parameter docs hold control characters, and an invalid name."""

    def __init__(self, text: str) -> None:
        self.text = text

    @hookimpl
    def register_objectives(self, register):
        def factory(scale: float = 1.0):
            return None

        factory.__doc__ = f"First {self.text} line.\n\nArgs:\n    scale: the {self.text} scale"
        register("hostile", factory, description=f"described {self.text}")
        register(f"bad{self.text}", factory)


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_list_plugins_and_help_escape_what_plugins_registered(text, fresh_manager, capsys):
    fresh_manager.register_plugin(HostileStrings(text), name=f"plugin{text}")
    for argv in (["list"], ["list", "objectives", "--params"], ["plugins"]):
        assert main(argv) == 0, argv
        captured = capsys.readouterr()
        assert_safe(captured.out)
        assert_safe(captured.err)
        assert "hostile" in captured.out
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    captured = capsys.readouterr()
    assert_safe(captured.out)
    assert "registered an invalid objective name" in captured.out


def _echo_cases(value: str) -> list[list[str]]:
    """Commands that stop on bad input and echo ``value`` in their one line."""
    run = ["run", "--tasks", "synthetic", "--steps", "1", "--seeds", "1", "--device", "cpu", "--no-progress"]
    return [
        [*run, "--objectives", value],
        [*run[:1], "--objectives", "infonce", "--tasks", value],
        [*run, "--objectives", "infonce", "--steps", value],
        [*run, "--objectives", "infonce", "--set", f"objective.infonce.temperature={value}"],
        [*run, "--objectives", "infonce", "--encoder", value],
        ["list", value],
        ["leaderboard", value],
        ["show", value, "--results", "results"],
        ["show", "--results", value],
        ["compare", value, "results"],
    ]


@pytest.mark.parametrize("value", [*HOSTILE.values(), LONG, "\x1b]0;x\x07" * 2_000],
                         ids=[*HOSTILE.keys(), "long", "long hostile"])
def test_error_lines_echo_input_escaped_and_cut(value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text_results(tmp_path / "results", "harmless")
    for argv in _echo_cases(value):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("pmrl-bench: error: "), (argv[:3], captured.err[:300])
        assert_safe(lines[0])
        assert len(lines[0]) <= MAX_LINE, (argv[:3], len(lines[0]))


# The modules that own the terminal: everything else writes through them.
WRITERS = {"console.py", "cli/output.py"}


def _terminal_writes(tree: ast.AST) -> list[tuple[int, str]]:
    """``print(...)``, ``sys.stdout/stderr.write(...)`` and progress bars whose description is not a constant or
    :func:`progress_label`, by line."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "print":
            found.append((node.lineno, "print"))
        elif (isinstance(func, ast.Attribute) and func.attr == "write" and isinstance(func.value, ast.Attribute)
              and func.value.attr in {"stdout", "stderr"}):
            found.append((node.lineno, f"sys.{func.value.attr}.write"))
        elif isinstance(func, ast.Name) and func.id == "tqdm":
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "desc" and not isinstance(value, ast.Constant) and not (
                        isinstance(value, ast.Call) and getattr(value.func, "id", "") == "progress_label"):
                    found.append((node.lineno, "tqdm(desc=...) without progress_label"))
    return found


def test_every_terminal_writer_goes_through_the_console_module():
    """A new ``print`` elsewhere would bypass the escaping: the mechanism holds only if nothing else writes."""
    package = Path(pmrl_bench.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative in WRITERS:
            continue
        for line, what in _terminal_writes(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"{relative}:{line}: {what}")
    assert offenders == [], "write through pmrl_bench.console (say, write, progress_label):\n" + "\n".join(offenders)
