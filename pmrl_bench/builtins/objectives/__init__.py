"""Built-in objectives plugin. Factories are lazy references, so listing them imports no torch."""

from pmrl_bench import hookimpl
from pmrl_bench.hookspecs import RegisterObjective


@hookimpl
def register_objectives(register: RegisterObjective) -> None:
    register(
        "pmrl",
        "pmrl_bench.builtins.objectives.pmrl:PMRLLoss",
        description="PMRL: softmax over each instance's singular values toward the largest + contrast of leading "
        "singular vectors (no ITM term)",
    )
    register(
        "infonce",
        "pmrl_bench.builtins.objectives.infonce:PairwiseInfoNCE",
        description="Symmetric CLIP InfoNCE averaged over all modality pairs",
    )
