"""``pmrl-bench list --params``: every component's parameters with type, default and the meaning its docstring gives."""

from __future__ import annotations

import json

import pytest

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.report.parameters import UNDOCUMENTED, describe_parameters


class GoogleStyle:
    """A toy objective documented Google-style.

    Args:
        margin: how far apart negatives are pushed.
        scale: multiplies
            the loss (a description over two lines).
    """

    def __init__(self, margin: float = 0.2, scale: float = 1.0, secret: int = 3) -> None:
        self.margin = margin


def numpy_style(tau: float = 0.1, mode: str = "mean"):
    """A toy objective documented numpy-style.

    Parameters
    ----------
    tau : float
        softmax temperature.
    mode : str
        how pairs combine.
    """


def rest_style(anchor: str | None = None, steps: int = 5):
    """A toy objective documented with reST fields.

    :param anchor: the modality others are compared with.
    :param steps: inner iterations.
    """


class _Documented:
    @hookimpl
    def register_objectives(self, register):
        register("toy-google", GoogleStyle)
        register("toy-numpy", numpy_style)
        register("toy-rest", rest_style)


def _listed(capsys, *argv: str) -> list[dict]:
    assert main(["list", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_builtin_parameter_has_a_meaning(fresh_manager):
    missing = [
        f"{c.kind} {c.name}: {info.name}"
        for c in fresh_manager.registry.components()
        if c.distribution == "pmrl-bench"
        for info in describe_parameters(c)
        if info.meaning == UNDOCUMENTED or not info.meaning
    ]
    assert missing == []


def test_meanings_come_from_google_numpy_and_rest_docstrings(fresh_manager, capsys):
    fresh_manager.register_plugin(_Documented(), name="toys")
    entries = {e["name"]: {p["name"]: p for p in e["params"]} for e in _listed(capsys, "objectives", "--params")}
    google, numpy_, rest = entries["toy-google"], entries["toy-numpy"], entries["toy-rest"]
    assert google["margin"] == {"name": "margin", "type": "float", "default": 0.2, "required": False,
                                "meaning": "how far apart negatives are pushed."}
    assert google["scale"]["meaning"] == "multiplies the loss (a description over two lines)."
    assert google["secret"]["meaning"] == UNDOCUMENTED
    assert numpy_["tau"]["meaning"] == "softmax temperature." and numpy_["mode"]["default"] == "mean"
    assert rest["anchor"]["meaning"] == "the modality others are compared with."
    assert rest["anchor"]["type"] == "str | None" and rest["anchor"]["default"] is None
    assert rest["steps"] == {"name": "steps", "type": "int", "default": 5, "required": False,
                             "meaning": "inner iterations."}


def test_human_listing_shows_type_default_and_meaning(fresh_manager, capsys):
    fresh_manager.register_plugin(_Documented(), name="toys")
    assert main(["list", "objectives", "--params"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("toy-google"))
    block = lines[start + 1 : start + 5]
    assert block[0].split() == ["parameter", "type", "default", "meaning"]
    assert (block[1].split()[:3] == ["margin", "float", "0.2"]
            and block[1].endswith("how far apart negatives are pushed."))
    assert block[3].split()[:3] == ["secret", "int", "3"] and block[3].endswith(UNDOCUMENTED)


def test_parameters_are_listed_only_when_asked(capsys):
    assert all("params" not in e for e in _listed(capsys))
    tasks = _listed(capsys, "tasks", "--params")
    synthetic = next(e for e in tasks if e["name"] == "synthetic")
    assert {p["name"] for p in synthetic["params"]} >= {"n_train", "n_test", "noise", "seed", "val_size"}


@pytest.mark.parametrize("kind", ["objectives", "encoders", "tasks"])
def test_a_factory_that_cannot_be_imported_is_listed_with_the_reason(fresh_manager, capsys, kind):
    class Broken:
        @hookimpl
        def register_objectives(self, register):
            register("broken", "no_such_module_anywhere:Factory")

        @hookimpl
        def register_encoders(self, register):
            register("broken", "no_such_module_anywhere:Factory")

        @hookimpl
        def register_tasks(self, register):
            register("broken", "no_such_module_anywhere:Factory")

    fresh_manager.register_plugin(Broken(), name="broken-plugin")
    assert main(["list", kind, "--params"]) == 0
    out = capsys.readouterr().out
    assert "parameters unavailable" in out and "no_such_module_anywhere" in out
    entry = next(e for e in _listed(capsys, kind, "--params") if e["name"] == "broken")
    assert entry["params"] is None and "no_such_module_anywhere" in entry["params_error"]
