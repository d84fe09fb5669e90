"""The search space of every built-in objective, in one table (read by ``pmrl-bench tune``).

Ranges bracket each paper's default by about an order of magnitude on either side; booleans that change what the
objective computes are searched too. The budget's learning rate and weight decay are searched for every objective
alike (``pmrl_bench.tuning.space.BUDGET_SPACE``), so they do not appear here.
"""

from __future__ import annotations

from pmrl_bench.tuning.space import Choice, Distribution, LogUniform, Uniform

# A learnable open_clip temperature must start in [0.01, 1]; 0.5 keeps the initial logit scale >= 2.
_CONTRASTIVE = {"temperature": LogUniform(0.01, 0.5), "label_smoothing": Uniform(0.0, 0.2)}

SEARCH_SPACES: dict[str, dict[str, Distribution]] = {
    # PMRL's defaults (tau1 0.05, tau2 0.1) come from continual training of a pretrained model.
    "pmrl": {"tau1": LogUniform(0.01, 1.0), "tau2": LogUniform(0.01, 1.0), "sign_fix": Choice([False, True])},
    "pmrl-intra": {"tau1": LogUniform(0.01, 1.0)},
    "volume": {"tau2": LogUniform(0.01, 1.0), "inter": Choice([False, True])},
    "infonce": dict(_CONTRASTIVE),
    "anchor": dict(_CONTRASTIVE),
    "gram": dict(_CONTRASTIVE),
    # The official training code drops TRIANGLE's square root; whether the true area does better is searched too.
    "triangle": {**_CONTRASTIVE, "sqrt": Choice([False, True])},
    "centrobind": dict(_CONTRASTIVE),
    # ConFu's temperature is fixed by default (learnable=False), so any positive value may start it.
    "confu": {**_CONTRASTIVE, "fusion_weight": Uniform(0.0, 1.0)},
}
