"""Robustness views: a modality missing at test time, and noise on one modality's inputs, stored in every result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pmrl_bench import hookimpl
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.evaluation.retrieval import pairwise_retrieval
from pmrl_bench.evaluation.robustness import NOISE_LEVELS, missing_modality, noisy_modality

N_TEST = 64


class SignalAndNoise:
    """Two views of one latent (``left``, ``right``) and a third modality of pure noise (``noise``)."""

    def __init__(self, n_train: int = 384, n_test: int = N_TEST, seed: int = 0) -> None:
        self.n_train, self.n_test, self.seed = n_train, n_test, seed

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        n = self.n_train + self.n_test
        z = rng.standard_normal((n, 8))
        views = {
            "left": z @ rng.standard_normal((8, 8)) + 0.05 * rng.standard_normal((n, 8)),
            "right": z @ rng.standard_normal((8, 8)) + 0.05 * rng.standard_normal((n, 8)),
            "noise": rng.standard_normal((n, 8)),
        }
        views = {m: x.astype(np.float32) for m, x in views.items()}
        labels = (z[:, 0] > 0).astype(np.int64) + 2 * (z[:, 1] > 0)
        cut = self.n_train
        return TaskData([Modality(m, VECTOR, (8,)) for m in views],
                        Split({m: x[:cut] for m, x in views.items()}, labels[:cut]),
                        Split({m: x[cut:] for m, x in views.items()}, labels[cut:]), num_classes=4)


class SignalAndNoisePlugin:
    @hookimpl
    def register_tasks(self, register):
        register("signal-and-noise", SignalAndNoise)


@pytest.fixture(scope="module")
def trained_result(tmp_path_factory):
    """One short infonce run on the signal-and-noise task (linear encoders), shared by the tests below."""
    from pmrl_bench import plugins
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.executor import collect_versions
    from pmrl_bench.runner.sweep import execute_sweep
    from pmrl_bench.stability import default_monitors
    from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(plugins.ENV_LOAD_PLUGINS, "")  # built-ins only, whatever is installed
        manager = plugins.PluginManager()
        manager.register_plugin(SignalAndNoisePlugin(), name="signal-and-noise")
        config = SweepConfig(objectives=["infonce"], tasks=["signal-and-noise"], seeds=1,
                             budget=Budget(steps=60, batch_size=64, lr=1e-2, dim=16),
                             encoders={m: "linear" for m in ("left", "right", "noise")}, device="cpu", progress=False)
        store = ResultStore(tmp_path_factory.mktemp("results"))
        torch.set_num_threads(1)
        try:
            summary = execute_sweep(plan_sweep(config, manager.registry), config, manager.registry, store,
                                    collect_versions({}), default_monitors)
        finally:
            torch.set_num_threads(threads)
    assert summary.ok == 1
    return store.read(summary.written[0])


def test_leaving_out_the_signal_drops_retrieval_to_chance_but_leaving_out_the_noise_does_not(trained_result):
    missing = trained_result.robustness["missing_modality"]
    chance = 1 / N_TEST
    assert missing["mean_R@1"]["noise"] > 0.5  # left and right still find each other
    for signal in ("left", "right"):
        assert missing["mean_R@1"][signal] < 4 * chance  # what is left, the other view and noise, shares nothing
        assert set(missing["retrieval"][signal]) == {f"{other}->noise" for other in {"left", "right"} - {signal}} | {
            f"noise->{other}" for other in {"left", "right"} - {signal}}
    # the fused probe: leaving out the noise costs nothing next to leaving out a view of the latent
    probe = missing["linear:fused"]
    assert probe["noise"] >= max(probe["left"], probe["right"])


def test_noise_level_zero_reproduces_the_plain_metric_and_noise_costs_retrieval(trained_result):
    noisy = trained_result.robustness["noise"]
    assert noisy["levels"] == list(NOISE_LEVELS)
    retrieval = trained_result.metrics.retrieval
    for m in ("left", "right", "noise"):
        others = [o for o in ("left", "right", "noise") if o != m]
        plain = [retrieval[f"{m}->{o}"]["R@1"] for o in others] + [retrieval[f"{o}->{m}"]["R@1"] for o in others]
        assert noisy["R@1"][m][0] == float(np.mean(plain))  # exactly: the same inputs through the same path
    left = noisy["R@1"]["left"]
    assert left[3] < left[0] - 0.1  # noise of one feature scale on a signal view costs retrieval
    assert noisy["mean_R@1"] == pytest.approx([np.mean([noisy["R@1"][m][i] for m in noisy["R@1"]])
                                               for i in range(len(NOISE_LEVELS))])


def test_missing_modality_on_constructed_embeddings():
    gen = torch.Generator().manual_seed(0)
    shared = F.normalize(torch.randn(200, 16, generator=gen), dim=-1)
    queries = {"a": shared, "b": shared.clone(), "n": F.normalize(torch.randn(200, 16, generator=gen), dim=-1)}
    missing = missing_modality(queries)
    assert missing["mean_R@1"]["n"] == 1.0  # a and b are the same vectors
    assert missing["mean_R@1"]["a"] < 0.05 and missing["mean_R@1"]["b"] < 0.05  # b against noise: chance is 0.005
    assert "linear:fused" not in missing  # no labels, no probe
    assert missing_modality({"a": shared, "b": shared}) == {}  # two modalities: nothing is left to fuse


def test_noise_is_seeded_and_skips_token_ids():
    torch.manual_seed(0)
    encoders = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 8), "b": torch.nn.Linear(4, 8),
                                    "t": torch.nn.Embedding(10, 8)})
    inputs = {"a": torch.randn(50, 4), "b": torch.randn(50, 4), "t": torch.randint(0, 10, (50,))}
    train = {m: x.numpy() for m, x in inputs.items()}
    with torch.no_grad():
        queries = {m: F.normalize(encoders[m](x).float(), dim=-1) for m, x in inputs.items()}
    first = noisy_modality(encoders, inputs, train, queries, seed=3)
    assert set(first["R@1"]) == {"a", "b"}  # no Gaussian noise on token ids
    assert noisy_modality(encoders, inputs, train, queries, seed=3) == first
    other = noisy_modality(encoders, inputs, train, queries, seed=4)
    assert other["R@1"]["a"][0] == first["R@1"]["a"][0]  # level 0 adds nothing, whatever the seed
    assert other != first


def test_level_0_read_from_the_pairwise_metrics_is_the_level_0_computed_here():
    torch.manual_seed(1)
    encoders = torch.nn.ModuleDict({m: torch.nn.Linear(4, 8) for m in ("a", "b", "c")})
    inputs = {m: torch.randn(60, 4) for m in encoders}
    with torch.no_grad():
        queries = {m: F.normalize(encoders[m](x), dim=-1) for m, x in inputs.items()}
    train = {m: x.numpy() for m, x in inputs.items()}
    computed = noisy_modality(encoders, inputs, train, queries, seed=0)
    read = noisy_modality(encoders, inputs, train, queries, seed=0, pairwise=pairwise_retrieval(queries))
    assert read == computed
    wrong = {d: {**scores, "R@1": 0.0} for d, scores in pairwise_retrieval(queries).items()}
    assert noisy_modality(encoders, inputs, train, queries, seed=0, pairwise=wrong)["R@1"]["a"][0] == 0.0
