"""Built-in encoders plugin."""

from pmrl_bench import hookimpl
from pmrl_bench.components import VECTOR
from pmrl_bench.hookspecs import RegisterEncoder


@hookimpl
def register_encoders(register: RegisterEncoder) -> None:
    register(
        "mlp",
        "pmrl_bench.builtins.encoders.vector:MLPEncoder",
        modality_kinds=(VECTOR,),
        default_for=(VECTOR,),
        description="Multi-layer perceptron over a flattened vector, projected to the shared dimension",
    )
    register(
        "linear",
        "pmrl_bench.builtins.encoders.vector:LinearEncoder",
        modality_kinds=(VECTOR,),
        description="One linear projection of a flattened vector to the shared dimension",
    )
