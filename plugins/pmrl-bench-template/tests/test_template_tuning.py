"""The objective's declared search space is tuned by `pmrl-bench tune` with no change to pmrl-bench."""

import json

from pmrl_bench import plugins
from pmrl_bench.cli import main


def test_template_siglip_is_tuned_over_its_declared_space(tmp_path, monkeypatch):
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "template")  # the installed template plugin, found by entry point
    monkeypatch.setattr(plugins, "MANAGER", plugins.PluginManager())
    root = tmp_path / "results"
    code = main(["tune", "--objectives", "template-siglip", "--tasks", "template-digits", "--trials", "2",
                 "--steps", "3", "--batch-size", "32", "--dim", "8", "--no-progress", "--results", str(root)])
    assert code == 0
    (record_path,) = (root / "_tuning" / "template-digits" / "template-siglip").glob("*.json")
    record = json.loads(record_path.read_text())
    assert len(record["trials"]) == 2
    for trial in record["trials"]:
        assert set(trial["params"]["objective"]) == {"scale_init", "bias_init"}
        assert 1.0 <= trial["params"]["objective"]["scale_init"] <= 100.0
        assert set(trial["params"]["budget"]) == {"lr", "weight_decay"}
    assert record["space"]["objective"]["bias_init"] == {"type": "uniform", "low": -15.0, "high": 0.0}
