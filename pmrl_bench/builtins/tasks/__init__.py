"""Built-in tasks plugin."""

from pmrl_bench import hookimpl
from pmrl_bench.hookspecs import RegisterTask


@hookimpl
def register_tasks(register: RegisterTask) -> None:
    register(
        "synthetic",
        "pmrl_bench.builtins.tasks.synthetic:SyntheticTask",
        default_suite=True,
        description="Seeded Gaussian latent blocks (shared + unique per modality) seen through random linear maps",
    )
