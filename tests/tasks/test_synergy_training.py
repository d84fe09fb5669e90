"""What a pairwise loss cannot learn and a higher-order view can: XOR synergy across three modalities.

m2's synergy bits are the XOR of m0's and m1's, so every pair of modalities is independent. Pairwise InfoNCE
over (m0, m1, m2) has nothing to align: every direction, and the fused query m0+m1 -> m2, stays at chance.
Treating (m0, m1) as one joint view, the same loss and budget retrieve m2 far above chance.
"""

from __future__ import annotations

import numpy as np
import torch

from pmrl_bench.builtins.tasks.synthetic import SyntheticTask
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.plugins import get_registry
from pmrl_bench.runner.spec import Budget, EncoderChoice, RunSpec
from pmrl_bench.runner.train import TrainOptions, train_and_evaluate

N_TEST = 256
CHANCE = 1 / N_TEST
BUDGET = Budget(steps=120, batch_size=128, lr=3e-3, dim=32)


def _train(data: TaskData) -> dict:
    spec = RunSpec("synergy", {}, "infonce", {}, {m.name: EncoderChoice("mlp") for m in data.modalities}, BUDGET, 0)
    outcome = train_and_evaluate(spec, data, get_registry(), TrainOptions(device=torch.device("cpu"), progress=False))
    assert outcome.status == "ok", outcome.error
    return outcome.metrics


def _joint_view(data: TaskData) -> TaskData:
    def join(split: Split) -> Split:
        both = np.hstack([split.inputs["m0"], split.inputs["m1"]])
        return Split({"m0m1": both, "m2": split.inputs["m2"]}, split.labels)

    width = data.modalities[0].shape[0] * 2
    return TaskData([Modality("m0m1", VECTOR, (width,)), data.modalities[2]], join(data.train), join(data.test))


def test_pairwise_infonce_misses_xor_synergy_that_a_joint_view_learns():
    data = SyntheticTask(modalities=3, n_train=2048, n_test=N_TEST, shared_dim=0, unique_dim=0,
                         synergy_dim=10, input_dim=16, noise=0.05, seed=0).load()
    pairwise = _train(data)
    best_pairwise = max(s["R@1"] for s in pairwise["retrieval"].values())
    fused = pairwise["retrieval_multimodal"]["m0+m1->m2"]["R@1"]
    assert best_pairwise < 5 * CHANCE and fused < 5 * CHANCE, (best_pairwise, fused)

    joint = _train(_joint_view(data))
    assert joint["retrieval"]["m0m1->m2"]["R@1"] > 20 * CHANCE, joint["retrieval"]
