"""Built-in tasks plugin."""

from pmrl_bench import hookimpl
from pmrl_bench.hookspecs import RegisterTask


@hookimpl
def register_tasks(register: RegisterTask) -> None:
    register(
        "synthetic",
        "pmrl_bench.builtins.tasks.synthetic:SyntheticTask",
        default_suite=True,
        description="Seeded Gaussian latent blocks (shared, pairwise, unique) and XOR-synergy bits seen through "
                    "random linear maps",
    )
    register(
        "mfeat",
        "pmrl_bench.builtins.tasks.mfeat:MfeatTask",
        default_suite=True,
        description="UCI Multiple Features: 2000 handwritten digits, six paired views (default pix, fou, zer), "
                    "10 classes",
    )
    register(
        "trifeatures",
        "pmrl_bench.builtins.tasks.trifeatures:TrifeaturesTask",
        description="Two rendered 32 px shape/texture/colour images and a caption: shared, pairwise and "
                    "synergistic attributes",
    )
    register(
        "table",
        "pmrl_bench.builtins.tasks.table:TableTask",
        description="Your own data: a table (parquet/CSV/JSON, or a datasets hub name) with columns mapped to "
                    "modalities, or a multi-view .mat/.npz/.h5 file whose views are the modalities; optional label",
    )
