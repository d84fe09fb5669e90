"""``run --shard I/N``: a deterministic partition of the sweep whose merged results equal the unsharded sweep."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmrl_bench.cli import main
from pmrl_bench.errors import UsageError
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.shard import Shard, parse_shard, select_shard, shard_indices

from scale_helpers import TINY_FLAGS, page_without_commands, tiny_plan


@pytest.mark.parametrize("text, shard", [("1/1", Shard(1, 1)), ("2/4", Shard(2, 4)), (" 3 / 3 ", Shard(3, 3))])
def test_parse_shard(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "1-4", "a/b", "2", ""])
def test_bad_shard_is_a_usage_error(text):
    with pytest.raises(UsageError, match=r"--shard must be I/N with 1 <= I <= N"):
        parse_shard(text)


def test_bad_shard_on_the_command_line_exits_2(capsys):
    assert main(["run", "--shard", "3/2", *TINY_FLAGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shard must be I/N" in err[0]


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=40), count=st.integers(1, 7),
       order=st.randoms(use_true_random=False))
def test_shards_partition_the_runs_evenly_whatever_their_order(ids, count, order):
    shards = [set(select_shard(ids, ids, Shard(i, count))) for i in range(1, count + 1)]
    assert set().union(*shards) == set(ids) and sum(map(len, shards)) == len(ids)  # disjoint and complete
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    shuffled = list(ids)
    order.shuffle(shuffled)
    assert [set(select_shard(shuffled, shuffled, Shard(i, count))) for i in range(1, count + 1)] == shards
    assert shard_indices(ids, Shard(1, 1)) == list(range(len(ids)))


def test_shard_of_a_plan_does_not_depend_on_flag_order():
    a, _, _ = tiny_plan(objectives=("infonce", "pmrl"), seeds=3, shard=Shard(2, 3))
    b, _, _ = tiny_plan(objectives=("pmrl", "infonce"), seeds=3, shard=Shard(2, 3))
    assert {s.run_id for s in a.specs} == {s.run_id for s in b.specs} and len(a.specs) == 2


@pytest.mark.slow
def test_split_then_merge_equals_the_unsharded_sweep(tmp_path):
    flags = ["run", "--objectives", "infonce,pmrl", "--seeds", "2", "--steps", "10", *TINY_FLAGS]
    assert main([*flags, "--results", str(tmp_path / "all"), "--leaderboard", str(tmp_path / "all-lb")]) == 0
    merged = tmp_path / "merged"
    for i in (1, 2):
        shard_dir = tmp_path / f"shard{i}"
        assert main([*flags, "--shard", f"{i}/2", "--results", str(shard_dir),
                     "--leaderboard", str(tmp_path / "lb")]) == 0
        shutil.copytree(shard_dir, merged, dirs_exist_ok=True)  # merging is copying files

    full, _ = ResultStore(tmp_path / "all").scan()
    union, problems = ResultStore(merged).scan()
    assert not problems and len(full) == len(union) == 4
    shard_sizes = [len(ResultStore(tmp_path / f"shard{i}").scan()[0]) for i in (1, 2)]
    assert shard_sizes == [2, 2]
    by_id = {r.run_id: r for r in union}
    for r in full:  # same runs, same numbers (training is deterministic per seed)
        assert by_id[r.run_id].metrics == r.metrics and by_id[r.run_id].stability == r.stability

    assert main(["leaderboard", str(merged), "--out", str(tmp_path / "merged-lb")]) == 0
    assert main(["leaderboard", str(tmp_path / "all"), "--out", str(tmp_path / "all-lb")]) == 0
    pages = sorted(p.name for p in (tmp_path / "all-lb").iterdir())
    assert pages == sorted(p.name for p in (tmp_path / "merged-lb").iterdir())
    # identical tables; only the provenance lines name the (sharded) commands that ran
    for page in [p for p in pages if p.endswith(".md")]:
        unsharded = page_without_commands((tmp_path / "all-lb" / page).read_text())
        assert unsharded == page_without_commands((tmp_path / "merged-lb" / page).read_text()), page

