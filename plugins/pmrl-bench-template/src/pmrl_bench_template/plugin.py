"""The hooks pmrl-bench calls. Register only the kinds you provide; delete the other hooks.

Factories are "module:attribute" strings, imported on first use, so `pmrl-bench list` and `--help` stay fast.
A factory's keyword arguments (with defaults) are the component's parameters: `--set objective.NAME.KEY=VALUE`.
"""

from pmrl_bench import hookimpl
from pmrl_bench.components import VECTOR
from pmrl_bench.hookspecs import RegisterEncoder, RegisterObjective, RegisterTask
from pmrl_bench.tuning.space import LogUniform, Uniform


@hookimpl
def register_objectives(register: RegisterObjective) -> None:
    register(
        "template-siglip",
        "pmrl_bench_template.objective:PairwiseSigLIP",
        description="SigLIP's sigmoid loss averaged over all modality pairs (learnable scale and bias)",
        # What `pmrl-bench tune` searches besides the learning rate and weight decay (optional; plain data, no torch).
        search_space={"scale_init": LogUniform(1.0, 100.0), "bias_init": Uniform(-15.0, 0.0)},
    )


@hookimpl
def register_encoders(register: RegisterEncoder) -> None:
    register(
        "template-resmlp",
        "pmrl_bench_template.encoder:ResidualMLP",
        modality_kinds=(VECTOR,),  # the runner refuses it for other kinds; leave default_for empty to not take over
        description="Residual MLP over a flattened vector",
    )


@hookimpl
def register_tasks(register: RegisterTask) -> None:
    register(
        "template-digits",
        "pmrl_bench_template.task:DigitStrips",
        description="scikit-learn's 8x8 digits cut into horizontal strips, one modality per strip (offline)",
    )
