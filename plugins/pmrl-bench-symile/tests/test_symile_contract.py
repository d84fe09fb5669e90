"""pmrl-bench's contract suite, run against this plugin's objective and task, and its installed entry point."""

from pmrl_bench.testing import ObjectiveContract, TaskContract, check_entry_points
from pmrl_bench_symile import plugin


class TestSymileContract(ObjectiveContract):
    plugin = plugin
    objective = "symile"


class TestSymileNSquaredContract(ObjectiveContract):
    plugin = plugin
    objective = "symile"
    params = {"negative_sampling": "n_squared"}


class TestXorTaskContract(TaskContract):
    plugin = plugin
    task = "symile-xor"
    params = {"bits": 8, "n_train": 64, "n_test": 32}


def test_installed_entry_point_registers_symile(monkeypatch):
    assert check_entry_points("pmrl-bench-symile", monkeypatch) == {"objective": ["symile"], "task": ["symile-xor"]}
