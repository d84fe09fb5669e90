"""Run pmrl-bench's contract suite on every component of this plugin (keep this file when you copy the template:
rename the classes and names, and it checks your components the same way)."""

from pmrl_bench.testing import EncoderContract, ObjectiveContract, TaskContract, check_entry_points
from pmrl_bench_template import plugin


class TestSigLIPContract(ObjectiveContract):
    plugin = plugin
    objective = "template-siglip"


class TestResidualMLPContract(EncoderContract):
    plugin = plugin
    encoder = "template-resmlp"
    params = {"hidden": 32}  # parameters to check it with; the defaults are checked too (JSON values)


class TestResidualMLPOnDigits(EncoderContract):
    plugin = plugin
    encoder = "template-resmlp"
    task = "template-digits"  # the encoder checked on this plugin's own task's modalities


class TestDigitStripsContract(TaskContract):
    plugin = plugin
    task = "template-digits"
    params = {"views": 3}


def test_installed_entry_point_registers_all_three(monkeypatch):
    assert check_entry_points("pmrl-bench-template", monkeypatch) == {
        "objective": ["template-siglip"], "encoder": ["template-resmlp"], "task": ["template-digits"]
    }
