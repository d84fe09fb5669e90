"""The pmrl-bench hooks. Factories are "module:attribute" strings, so `pmrl-bench list` does not import torch."""

from pmrl_bench import hookimpl
from pmrl_bench.hookspecs import RegisterObjective, RegisterTask


@hookimpl
def register_objectives(register: RegisterObjective) -> None:
    register(
        "symile",
        "pmrl_bench_symile.loss:SymileLoss",
        description="Symile: contrastive loss on the multilinear inner product of all modalities (Saporta et al. 2024)",
    )


@hookimpl
def register_tasks(register: RegisterTask) -> None:
    register(
        "symile-xor",
        "pmrl_bench_symile.xor:XorTask",
        description="Three bit-vector modalities with c = a XOR b: only all three together carry information",
    )
