"""Built-in reporters plugin: experiment tracking through the same hook as third-party reporters."""

from pmrl_bench import hookimpl
from pmrl_bench.hookspecs import RegisterReporter


@hookimpl
def register_reporters(register: RegisterReporter) -> None:
    register(
        "tensorboard",
        "pmrl_bench.builtins.reporters.tensorboard:TensorBoardReporter",
        description="TensorBoard event files, one directory per run under RESULTS/_logs/tensorboard/ "
        "(optional extra 'log')",
    )
