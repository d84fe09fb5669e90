"""Built-in encoders plugin: one default encoder per modality kind, and alternatives."""

from pmrl_bench import hookimpl
from pmrl_bench.components import IMAGE, TEXT, VECTOR
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
    register(
        "cnn",
        "pmrl_bench.builtins.encoders.image:SmallCNN",
        modality_kinds=(IMAGE,),
        default_for=(IMAGE,),
        description="Small CNN (three stride-2 conv blocks, average pooling), for images of a few dozen pixels",
    )
    register(
        "bag",
        "pmrl_bench.builtins.encoders.text:EmbeddingBagEncoder",
        modality_kinds=(TEXT,),
        default_for=(TEXT,),
        description="Trainable embedding bag (mean of word vectors) over token ids, then an MLP",
    )
    register(
        "minilm",
        "pmrl_bench.builtins.encoders.text:MiniLMEncoder",
        modality_kinds=(TEXT,),
        description="Frozen all-MiniLM-L6-v2 sentence embeddings (optional extra 'text') with a trainable head",
    )
