"""Built-in objectives plugin. Factories are lazy references, so listing them imports no torch; each declares its
hyper-parameter search space (``search_spaces.py``) for ``pmrl-bench tune``."""

from pmrl_bench import hookimpl
from pmrl_bench.builtins.objectives.search_spaces import SEARCH_SPACES
from pmrl_bench.hookspecs import RegisterObjective

_OBJECTIVES = "pmrl_bench.builtins.objectives"


@hookimpl
def register_objectives(register: RegisterObjective) -> None:
    register(
        "pmrl",
        f"{_OBJECTIVES}.pmrl:PMRLLoss",
        description="PMRL: softmax over each instance's singular values toward the largest + contrast of leading "
        "singular vectors (no ITM term)",
        search_space=SEARCH_SPACES["pmrl"],
    )
    register(
        "infonce",
        f"{_OBJECTIVES}.infonce:PairwiseInfoNCE",
        description="Symmetric CLIP InfoNCE averaged over all modality pairs",
        search_space=SEARCH_SPACES["infonce"],
    )
    register(
        "anchor",
        f"{_OBJECTIVES}.anchor:AnchorBinding",
        description="ImageBind/LanguageBind binding: symmetric InfoNCE between one anchor modality and each other",
        search_space=SEARCH_SPACES["anchor"],
    )
    register(
        "gram",
        f"{_OBJECTIVES}.gram:GRAMLoss",
        description="GRAM: contrastive loss on the volume spanned by an anchor and another instance's other "
        "modalities, both directions (no DAM term)",
        search_space=SEARCH_SPACES["gram"],
    )
    register(
        "pmrl-intra",
        f"{_OBJECTIVES}.pmrl:PMRLIntra",
        description="Ablation: PMRL's singular-value (intra) term alone",
        search_space=SEARCH_SPACES["pmrl-intra"],
    )
    register(
        "volume",
        f"{_OBJECTIVES}.volume:VolumeLoss",
        description="Ablation: product of each instance's singular values (volume of its own stack), the "
        "formulation PMRL calls unstable",
        search_space=SEARCH_SPACES["volume"],
    )
    register(
        "triangle",
        f"{_OBJECTIVES}.triangle:TriangleLoss",
        description="TRIANGLE: contrastive loss on the area of the triangle between an anchor and another "
        "instance's other modalities, both directions (squared-area surrogate of the official code; no ITM term)",
        search_space=SEARCH_SPACES["triangle"],
        modalities=(3,),  # a triangle has three vertices; the class's simplex for other counts is not registered
    )
    register(
        "centrobind",
        f"{_OBJECTIVES}.centrobind:CentroBind",
        description="CentroBind: symmetric InfoNCE between every modality and the normalised centroid of its "
        "instance's modalities (no fixed anchor)",
        search_space=SEARCH_SPACES["centrobind"],
    )
    register(
        "confu",
        f"{_OBJECTIVES}.confu:ConFu",
        description="ConFu: pairwise InfoNCE + InfoNCE between a learned fusion of each modality pair and the "
        "remaining modality",
        search_space=SEARCH_SPACES["confu"],
    )
